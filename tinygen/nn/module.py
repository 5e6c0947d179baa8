"""Module: the base class of every layer and model, and Parameter.

A Module finds its parameters by walking its own attributes in the order they were set
(this walk is the one piece of reflection in tinygen): a Parameter is a weight, a Module
is a child whose parameters get the attribute's name as a prefix, a name registered with
`register_buffer` is saved state that is not trained (BatchNorm's running mean).
The dotted names that come out ("transformer.h.0.attn.c_attn.weight") are PyTorch's, so
state_dicts line up with PyTorch / nanoGPT checkpoints key for key.
"""

from collections import OrderedDict
from contextlib import contextmanager

import numpy as np

from tinygen.backend import check_device, to_device
from tinygen.tensor import Tensor

_TENSOR_GRAD = Tensor.__dict__["grad"]  # the slot that Parameter.grad wraps


class Parameter(Tensor):
    """A tensor that a Module trains: requires_grad=True, found by `parameters()`."""

    # _flat, _grad_view: set by an optimizer's flat buffers (tinygen/optim/flat.py)
    __slots__ = ("_data_view", "_flat", "_grad_view")

    def __init__(self, data, requires_grad=True):
        self._flat = self._grad_view = self._data_view = None
        super().__init__(data.data if isinstance(data, Tensor) else data,
                         requires_grad=requires_grad)

    def _attach_flat(self, flat, data_view, grad_view):
        self._flat, self._data_view, self._grad_view = flat, data_view, grad_view

    def _get_grad(self):
        return _TENSOR_GRAD.__get__(self)

    def _set_grad(self, value):
        """A gradient for a parameter in a flat buffer is copied into its segment of the
        flat gradient (while .data is still its view), so the optimizer sees one array."""
        view = getattr(self, "_grad_view", None)
        if (value is not None and view is not None and value.data is not view
                and self.data is self._data_view and value.shape == view.shape
                and value.dtype == view.dtype):
            view[...] = value.data
            value = Tensor._make(view, None)
        _TENSOR_GRAD.__set__(self, value)

    grad = property(_get_grad, _set_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Module:
    training = True

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- the attribute walk ---------------------------------------------------------
    def register_buffer(self, name, tensor, persistent=True):
        """Keep `tensor` as state that is moved with the module but not trained. As in
        PyTorch, a persistent buffer is saved in state_dict (BatchNorm's running mean); a
        non-persistent one is not (a causal mask or a RoPE table, rebuilt from the config)."""
        self.__dict__.setdefault("_buffer_names", [])
        self.__dict__.setdefault("_non_persistent", set())
        if name not in self._buffer_names:
            self._buffer_names.append(name)
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)
        setattr(self, name, tensor)

    def named_children(self):
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def children(self):
        return (m for _, m in self.named_children())

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return (m for _, m in self.named_modules())

    def _named_tensors(self, prefix, with_buffers, persistent_only=False):
        for name, value in vars(self).items():
            full = f"{prefix}{name}"
            if isinstance(value, Parameter):
                yield full, value
            elif isinstance(value, Module):
                yield from value._named_tensors(full + ".", with_buffers, persistent_only)
        if with_buffers:
            skip = self.__dict__.get("_non_persistent", ()) if persistent_only else ()
            for name in self.__dict__.get("_buffer_names", ()):
                if getattr(self, name) is not None and name not in skip:
                    yield f"{prefix}{name}", getattr(self, name)

    def named_buffers(self):
        """(name, Tensor) pairs of every buffer, persistent or not."""
        own = {id(p) for p in self.parameters()}
        return ((n, t) for n, t in self._named_tensors("", True) if id(t) not in own)

    def buffers(self):
        return [t for _, t in self.named_buffers()]

    def named_parameters(self):
        """(name, Parameter) pairs; a parameter shared by two modules is listed once."""
        seen = set()
        for name, p in self._named_tensors("", with_buffers=False):
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def num_parameters(self):
        return sum(p.numel() for p in self.parameters())

    # ---- state ----------------------------------------------------------------------
    def state_dict(self):
        """name -> Tensor for every parameter and persistent buffer (shared ones under each
        name, as PyTorch does: nanoGPT's state_dict has both wte.weight and lm_head.weight)."""
        return OrderedDict((name, t.detach())
                           for name, t in self._named_tensors("", True, persistent_only=True))

    def load_state_dict(self, state_dict, strict=True):
        """Copy values into this module's tensors, in place. With strict=True every key
        must match; missing, unexpected and mis-shaped keys are all reported at once."""
        own = OrderedDict(self._named_tensors("", True, persistent_only=True))
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        wrong = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {own[k].shape}"
                 for k in own if k in state_dict and tuple(state_dict[k].shape) != own[k].shape]
        problems = []
        if wrong:
            problems.append("mis-shaped keys: " + "; ".join(wrong))
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if problems:
            raise KeyError(f"load_state_dict into {type(self).__name__}: " + " | ".join(problems))
        for name, t in own.items():
            if name in state_dict:
                value = state_dict[name]
                value = value.data if isinstance(value, Tensor) else value
                t.data[...] = to_device(np.asarray(value) if not hasattr(value, "dtype")
                                        else value, t.device).astype(t.dtype, copy=False)
        return missing, unexpected

    # ---- modes and devices ----------------------------------------------------------
    def train(self, mode=True):
        for m in self.modules():
            m.training = mode
        return self

    def eval(self):
        return self.train(False)

    @contextmanager
    def evaluating(self):
        """`with model.evaluating():` runs the block in eval mode (no dropout, BatchNorm's
        running statistics) and then gives every submodule back the mode it had."""
        modes = [(m, m.training) for m in self.modules()]
        self.eval()
        try:
            yield self
        finally:
            for m, mode in modes:
                m.training = mode

    def to(self, device):
        """Move every parameter and buffer to `device`, in place (optimizers stay valid)."""
        device = check_device(device)
        for _, t in self._named_tensors("", True):
            t.data = to_device(t.data, device)
            if t.grad is not None:
                t.grad.data = to_device(t.grad.data, device)
        return self

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def __repr__(self):
        lines = [f"({name}): " + repr(child).replace("\n", "\n  ")
                 for name, child in self.named_children()]
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"

    def extra_repr(self):
        return ""


class Sequential(Module):
    def __init__(self, *modules):
        for i, m in enumerate(modules):
            setattr(self, str(i), m)

    def __iter__(self):
        return iter(list(self.children()))

    def __getitem__(self, i):
        return list(self.children())[i]

    def __len__(self):
        return len(list(self.children()))

    def forward(self, x):
        for m in self.children():
            x = m(x)
        return x


class ModuleList(Module):
    def __init__(self, modules=()):
        for m in modules:
            self.append(m)

    def append(self, module):
        setattr(self, str(len(self)), module)
        return self

    def __iter__(self):
        return iter(list(self.children()))

    def __getitem__(self, i):
        return list(self.children())[i]

    def __len__(self):
        return sum(1 for _ in self.children())


class ModuleDict(Module):
    def __init__(self, modules=None):
        for name, m in (modules or {}).items():
            setattr(self, name, m)

    def __getitem__(self, name):
        return getattr(self, name)

    def __contains__(self, name):
        return isinstance(getattr(self, name, None), Module)

    def keys(self):
        return [name for name, _ in self.named_children()]

    def items(self):
        return list(self.named_children())

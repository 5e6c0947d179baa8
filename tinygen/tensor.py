"""Tensor: an array (NumPy or CuPy) plus what autograd needs.

Every method is a thin, explicit call into a primitive Function from `tinygen.ops` or a
one-line composition of them (micrograd style: micrograd writes `a - b` as `a + (-b)`; here
`var` is `mean((x - mean x)²)`). A tensor made by an op that involved a tensor with
`requires_grad=True` remembers that op in `_ctx`; `backward()` walks those links.

This file holds the core (data, autograd, operators and dtype promotion); the method
families are written out in mixin classes: `tensor_convert.py` (to NumPy, devices, dtypes),
`tensor_math.py` (elementwise math), `tensor_reduce.py` (reductions, scans, orderings),
`tensor_shape.py` (shape and indexing).

Dtype promotion follows PyTorch: the rules are in `tinygen/dtypes.py`.
"""

import numpy as np

from tinygen import ops
from tinygen.autograd import HookHandle
from tinygen.autograd import backward as _run_backward
from tinygen.backend import device_of, get_array_module, to_device, to_numpy
from tinygen.dtypes import promote_types
from tinygen.tensor_convert import ConversionMethods
from tinygen.tensor_math import ElementwiseMethods
from tinygen.tensor_reduce import ReductionMethods
from tinygen.tensor_shape import ShapeMethods


class Tensor(ConversionMethods, ElementwiseMethods, ReductionMethods, ShapeMethods):
    # _post_accumulate_grad_hooks stays unset (no cost per op) until a hook is registered
    __slots__ = ("__weakref__", "_ctx", "_post_accumulate_grad_hooks", "_retain_grad", "data",
                 "grad", "requires_grad")
    __array_priority__ = 1000  # so ndarray + Tensor calls Tensor.__radd__

    def __init__(self, data, dtype=None, device=None, requires_grad=False):
        if isinstance(data, Tensor):
            data = data.data
        xp = get_array_module(data)
        if dtype is None and not hasattr(data, "dtype"):
            data = xp.asarray(data)
            if data.dtype == np.float64:  # Python floats become float32, as in PyTorch
                data = data.astype(np.float32)
        else:
            data = xp.asarray(data, dtype=dtype)
        if device is not None:
            data = to_device(data, device)
        self.data, self.grad, self._ctx, self._retain_grad = data, None, None, False
        self.requires_grad = False
        self.requires_grad_(requires_grad)

    @classmethod
    def _make(cls, data, ctx):
        """Fast path for ops: wrap an array we just computed, no checks or copies."""
        t = object.__new__(Tensor)
        t.data, t.grad, t._ctx, t._retain_grad = data, None, ctx, False
        t.requires_grad = ctx is not None
        return t

    # ---- properties -----------------------------------------------------------------
    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self):
        return device_of(self.data)

    @property
    def is_leaf(self):
        return self._ctx is None

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    def size(self, axis=None):
        return self.shape if axis is None else self.shape[axis]

    def numel(self):
        return int(self.data.size)

    def __len__(self):
        return self.shape[0]

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        device = ", device='cuda'" if self.device == "cuda" else ""
        body = np.array2string(to_numpy(self.data), separator=", ", prefix="tensor(")
        return f"tensor({body}, dtype={self.dtype}{device}{grad})"

    # ---- autograd -------------------------------------------------------------------
    def requires_grad_(self, flag=True):
        if flag and self.data.dtype.kind not in "fc":
            raise TypeError(f"requires_grad: only floating-point tensors can require "
                            f"gradients, this one is {self.data.dtype}")
        self.requires_grad = bool(flag)
        return self

    def retain_grad(self):
        """Keep .grad on this non-leaf tensor too (leaves always keep theirs)."""
        self._retain_grad = True
        return self

    def register_post_accumulate_grad_hook(self, hook):
        """Call hook(self) in every backward once this leaf's .grad is final (all of this
        backward's contributions summed in), as PyTorch does; DistributedDataParallel starts
        a bucket's all-reduce from it. Returns a handle whose remove() unregisters it."""
        if self._ctx is not None:
            raise RuntimeError("register_post_accumulate_grad_hook: only leaf tensors get "
                               "this hook (this one was made by an op)")
        if not callable(hook):
            raise TypeError(f"register_post_accumulate_grad_hook: hook must be callable, "
                            f"got {type(hook).__name__}")
        hooks = getattr(self, "_post_accumulate_grad_hooks", None)
        if hooks is None:
            hooks = self._post_accumulate_grad_hooks = []
        hooks.append(hook)
        HookHandle.registered = True
        return HookHandle(hooks, hook)

    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's .grad (first-order only)."""
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad, so there is no "
                               "graph to differentiate (did you forget requires_grad=True?)")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward: called on a tensor of shape {self.shape}; "
                                   "only a scalar gets an implicit gradient of 1, pass grad=")
            grad = get_array_module(self.data).ones_like(self.data)
        else:
            grad = grad.data if isinstance(grad, Tensor) else grad
            if tuple(grad.shape) != self.shape:
                raise ValueError(f"backward: grad has shape {tuple(grad.shape)}, "
                                 f"the tensor has {self.shape}")
            grad = to_device(grad, self.device).astype(self.dtype, copy=False)
        _run_backward(self, grad, retain_graph)

    def detach(self):
        """The same array, cut from the graph."""
        return Tensor._make(self.data, None)

    def zero_grad(self):
        self.grad = None

    # ---- dtype promotion (PyTorch's rules: tinygen/dtypes.py) ----------------------------
    def _pair(self, other):
        """(self, other) as two tensors of one dtype, by PyTorch's promotion rules."""
        if type(other) is Tensor:
            if other.data.dtype == self.data.dtype:  # the fast path: one comparison
                return self, other
            dtype = promote_types(self.data, other.data)
            if dtype is None:  # strings, objects: let the op itself say what is wrong
                return self, other
            return self._cast_to(dtype), other._cast_to(dtype)
        const = self._lift(other)
        if const.data.dtype == self.data.dtype:
            return self, const
        dtype = promote_types(self.data, const.data)
        if dtype is None:
            return self, const
        return self._cast_to(dtype), const._cast_to(dtype)

    def _lift(self, other):
        """Wrap a Python number or an array as a constant tensor (no gradient): a float meets
        an integer tensor as float32, an array meets a float tensor in the tensor's dtype."""
        if isinstance(other, Tensor):
            return other
        xp = get_array_module(self.data)
        dtype = self.data.dtype
        if isinstance(other, (bool, int, float)):
            if isinstance(other, float) and dtype.kind in "biu":
                dtype = np.float32  # PyTorch's default float dtype
            elif not isinstance(other, bool) and isinstance(other, int) and dtype.kind == "b":
                dtype = np.int64
            return Tensor._make(xp.asarray(other, dtype=dtype), None)
        other = xp.asarray(other)
        if dtype.kind in "fc" and other.dtype.kind in "biuf":
            other = other.astype(dtype, copy=False)  # array constants adopt the tensor's dtype
        return Tensor._make(other, None)

    def _cast_to(self, dtype):
        return self if self.data.dtype == dtype else self.to(dtype=dtype)

    def _float(self):
        """Self, or a float32 copy of a bool/integer tensor (float math on ints is float32)."""
        return self if self.data.dtype.kind in "fc" else self.to(dtype=np.float32)

    # ---- arithmetic -----------------------------------------------------------------
    def __add__(self, other):
        return ops.Add.apply(*self._pair(other))

    def __radd__(self, other):
        a, b = self._pair(other)
        return ops.Add.apply(b, a)

    def __sub__(self, other):
        return ops.Sub.apply(*self._pair(other))

    def __rsub__(self, other):
        a, b = self._pair(other)
        return ops.Sub.apply(b, a)

    def __mul__(self, other):
        return ops.Mul.apply(*self._pair(other))

    def __rmul__(self, other):
        a, b = self._pair(other)
        return ops.Mul.apply(b, a)

    def __truediv__(self, other):
        a, b = self._pair(other)
        return ops.Div.apply(a._float(), b._float())  # int / int is float32, as in PyTorch

    def __rtruediv__(self, other):
        a, b = self._pair(other)
        return ops.Div.apply(b._float(), a._float())

    def __neg__(self):
        return ops.Neg.apply(self)

    def __abs__(self):
        return ops.Abs.apply(self)

    def __pow__(self, p):
        if isinstance(p, (int, float)) and not isinstance(p, bool):
            x = self._float() if isinstance(p, float) else self
            return ops.Pow.apply(x, p=p)
        return ops.Pow.apply(*self._pair(p))

    def __rpow__(self, base):
        a, b = self._pair(base)
        return ops.Pow.apply(b, a)

    def pow(self, exponent):
        return self ** exponent

    def __matmul__(self, other):
        return ops.MatMul.apply(*self._pair(other))

    def __rmatmul__(self, other):
        a, b = self._pair(other)
        return ops.MatMul.apply(b, a)

    # integer and logical ops carry no gradient (PyTorch: not differentiable)
    def _raw(self, other, op):
        a, b = self._pair(other)
        return Tensor._make(op(a.data, b.data), None)

    def __floordiv__(self, other):
        return self._raw(other, lambda a, b: a // b)

    def __rfloordiv__(self, other):
        return self._raw(other, lambda a, b: b // a)

    def __mod__(self, other):
        """Python's (and PyTorch's) remainder: the sign of the divisor. Differentiable for
        floats as the composition a - b·floor(a / b)."""
        a, b = self._pair(other)
        if a.data.dtype.kind in "fc":
            return a - b * (a / b).floor()
        return Tensor._make(a.data % b.data, None)

    def __rmod__(self, other):
        a, b = self._pair(other)
        return b % a

    def __and__(self, other):
        return self._raw(other, lambda a, b: a & b)

    __rand__ = __and__

    def __or__(self, other):
        return self._raw(other, lambda a, b: a | b)

    __ror__ = __or__

    def __xor__(self, other):
        return self._raw(other, lambda a, b: a ^ b)

    __rxor__ = __xor__

    def __invert__(self):
        return Tensor._make(~self.data, None)

    def __lshift__(self, other):
        return self._raw(other, lambda a, b: a << b)

    def __rshift__(self, other):
        return self._raw(other, lambda a, b: a >> b)

    # comparisons give boolean tensors that carry no gradient
    def __eq__(self, other):
        return self._raw(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._raw(other, lambda a, b: a != b)

    def __lt__(self, other):
        return self._raw(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._raw(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._raw(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._raw(other, lambda a, b: a >= b)

    __hash__ = object.__hash__  # tensors are hashed by identity, as in PyTorch

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(f"the truth value of a tensor of shape {self.shape} is "
                               "ambiguous; use .any() or .all()")
        return bool(self.data)


def cat(tensors, axis=0, *, dim=None):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: needs at least one tensor")
    return ops.Cat.apply(*tensors, axis=axis if dim is None else dim)


def stack(tensors, axis=0, *, dim=None):
    axis = axis if dim is None else dim
    return cat([t.unsqueeze(axis) for t in tensors], axis=axis)


def where(condition, a, b):
    """Elementwise `a if condition else b`; `condition` (bool) gets no gradient. `a` and `b`
    may both be Python numbers (then the result has their promoted dtype, as in PyTorch)."""
    cond = condition.data if isinstance(condition, Tensor) else condition
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        xp = get_array_module(cond)
        a = Tensor._make(xp.asarray(a, dtype=np.float32 if isinstance(a, float) else None),
                         None)
    a, b = (a._pair(b) if isinstance(a, Tensor) else b._pair(a)[::-1])
    return ops.Where.apply(a, b, cond=cond)


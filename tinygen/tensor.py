"""Tensor: an array (NumPy or CuPy) plus what autograd needs.

Every method here is a thin, explicit call into a primitive Function from `tinygen.ops`
or a one-line composition of them (micrograd style: `a - b` is its own op, but `var` is
`mean((x - mean x)²)`). A tensor made by an op that involved a tensor with
`requires_grad=True` remembers that op in `_ctx`; `backward()` walks those links.
"""

import numpy as np

from tinygen import ops
from tinygen.autograd import backward as _run_backward
from tinygen.backend import check_device, device_of, get_array_module, to_device, to_numpy


class Tensor:
    __slots__ = ("__weakref__", "_ctx", "_retain_grad", "data", "grad", "requires_grad")
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

    # ---- conversion -----------------------------------------------------------------
    def numpy(self):
        """The values as a NumPy array (copied from the GPU if needed; no graph)."""
        return to_numpy(self.data)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item: only one-element tensors convert to a Python number, "
                             f"this one has shape {self.shape}")
        return to_numpy(self.data.reshape(())).item()  # to_numpy: pending index checks

    def tolist(self):
        return to_numpy(self.data).tolist()

    def to(self, device=None, dtype=None):
        """Move to "cpu"/"cuda" and/or cast; a differentiable copy (or self if nothing changes)."""
        out = self
        if dtype is not None and np.dtype(dtype) != self.dtype:
            if np.dtype(dtype).kind not in "fc":  # integers carry no gradient
                out = Tensor._make(self.data.astype(dtype), None)
            else:
                out = ops.Cast.apply(out, dtype=np.dtype(dtype))
        if device is not None and check_device(device) != self.device:
            out = ops.ToDevice.apply(out, device=device)
        return out

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def float(self):
        return self.to(dtype=np.float32)

    def double(self):
        return self.to(dtype=np.float64)

    def long(self):
        return Tensor._make(self.data.astype(np.int64), None)

    astype = to

    # ---- arithmetic -----------------------------------------------------------------
    def _lift(self, other):
        """Wrap a Python number or array as a constant tensor of a matching dtype.
        (A float64 0-d array would silently turn float32 math into float64: NumPy 2.)"""
        if isinstance(other, Tensor):
            return other
        xp = get_array_module(self.data)
        if isinstance(other, (bool, int, float)):
            return Tensor._make(xp.asarray(other, dtype=xp.result_type(self.data, other)), None)
        return Tensor._make(xp.asarray(other), None)

    def __add__(self, other):
        return ops.Add.apply(self, self._lift(other))

    def __radd__(self, other):
        return ops.Add.apply(self._lift(other), self)

    def __sub__(self, other):
        return ops.Sub.apply(self, self._lift(other))

    def __rsub__(self, other):
        return ops.Sub.apply(self._lift(other), self)

    def __mul__(self, other):
        return ops.Mul.apply(self, self._lift(other))

    def __rmul__(self, other):
        return ops.Mul.apply(self._lift(other), self)

    def __truediv__(self, other):
        return ops.Div.apply(self, self._lift(other))

    def __rtruediv__(self, other):
        return ops.Div.apply(self._lift(other), self)

    def __neg__(self):
        return ops.Neg.apply(self)

    def __pow__(self, p):
        if isinstance(p, (int, float)):
            return ops.Pow.apply(self, p=p)
        return (self._lift(p) * self.log()).exp()  # x ** y = exp(y log x), for x > 0

    def __rpow__(self, base):
        return (self * self._lift(base).log()).exp()

    def __matmul__(self, other):
        return ops.MatMul.apply(self, self._lift(other))

    def __rmatmul__(self, other):
        return ops.MatMul.apply(self._lift(other), self)

    # comparisons give boolean tensors that carry no gradient
    def _compare(self, other, op):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor._make(op(self.data, other), None)

    def __eq__(self, other):
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._compare(other, lambda a, b: a != b)

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b)

    __hash__ = object.__hash__  # tensors are hashed by identity, as in PyTorch

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(f"the truth value of a tensor of shape {self.shape} is "
                               "ambiguous; use .any() or .all()")
        return bool(self.data)

    def any(self):
        return bool(self.data.any())

    def all(self):
        return bool(self.data.all())

    # ---- unary math -----------------------------------------------------------------
    def exp(self):
        return ops.Exp.apply(self)

    def log(self):
        return ops.Log.apply(self)

    def sqrt(self):
        return ops.Sqrt.apply(self)

    def tanh(self):
        return ops.Tanh.apply(self)

    def sigmoid(self):
        return ops.Sigmoid.apply(self)

    def relu(self):
        return ops.Relu.apply(self)

    def abs(self):
        return ops.Abs.apply(self)

    def clip(self, min=None, max=None):
        return ops.Clip.apply(self, lo=min, hi=max)

    clamp = clip

    # ---- reductions -----------------------------------------------------------------
    def sum(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        axis, keepdims = _axis_alias(axis, keepdims, dim, keepdim)
        return ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        axis, keepdims = _axis_alias(axis, keepdims, dim, keepdim)
        return ops.Mean.apply(self, axis=axis, keepdims=keepdims)

    def var(self, axis=None, keepdims=False, ddof=0, *, dim=None, keepdim=None):
        """Variance with NumPy's default ddof=0 (PyTorch's default is the unbiased ddof=1)."""
        axis, keepdims = _axis_alias(axis, keepdims, dim, keepdim)
        centered = self - self.mean(axis, keepdims=True)
        n = self.data.size // max(centered.mean(axis, keepdims=keepdims).data.size, 1)
        return (centered * centered).sum(axis, keepdims=keepdims) / max(n - ddof, 1)

    def max(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        axis, keepdims = _axis_alias(axis, keepdims, dim, keepdim)
        return ops.Max.apply(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return -((-self).max(axis, keepdims, dim=dim, keepdim=keepdim))

    def argmax(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        axis, keepdims = _axis_alias(axis, keepdims, dim, keepdim)
        return Tensor._make(self.data.argmax(axis=axis, keepdims=keepdims), None)

    def softmax(self, axis=-1, *, dim=None):
        return ops.Softmax.apply(self, axis=axis if dim is None else dim)

    def log_softmax(self, axis=-1, *, dim=None):
        return ops.LogSoftmax.apply(self, axis=axis if dim is None else dim)

    # ---- shape ----------------------------------------------------------------------
    def reshape(self, *shape):
        shape = tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], int) else shape
        try:
            return ops.Reshape.apply(self, shape=shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {self.shape} "
                             f"({self.numel()} elements) into {shape}") from None

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        end = end_dim % max(self.ndim, 1)
        return self.reshape(self.shape[:start_dim] + (-1,) + self.shape[end + 1:])

    def _axis(self, axis, op, ndim=None):
        """A possibly negative axis as a positive one, or a clear error naming `op`."""
        ndim = self.ndim if ndim is None else ndim
        if not -ndim <= axis < max(ndim, 1):
            raise ValueError(f"{op}: axis {axis} is out of range for a tensor of shape "
                             f"{self.shape}")
        return axis % max(ndim, 1)

    def permute(self, *axes):
        axes = tuple(axes[0]) if len(axes) == 1 and not isinstance(axes[0], int) else axes
        axes = tuple(self._axis(a, "permute") for a in axes)
        if sorted(axes) != list(range(self.ndim)):
            raise ValueError(f"permute: {axes} is not an ordering of the {self.ndim} axes "
                             f"of a tensor of shape {self.shape}")
        return ops.Permute.apply(self, axes=axes)

    def transpose(self, axis0=-2, axis1=-1):
        axes = list(range(self.ndim))
        a, b = self._axis(axis0, "transpose"), self._axis(axis1, "transpose")
        axes[a], axes[b] = axes[b], axes[a]
        return self.permute(axes)

    def squeeze(self, axis=None, *, dim=None):
        axis = axis if dim is None else dim
        if axis is None:
            return self.reshape([n for n in self.shape if n != 1])
        axes = {self._axis(a, "squeeze") for a in ((axis,) if isinstance(axis, int) else axis)}
        for a in axes:
            if self.shape[a] != 1:
                raise ValueError(f"squeeze: axis {a} of shape {self.shape} has size "
                                 f"{self.shape[a]}, not 1")
        return self.reshape([n for i, n in enumerate(self.shape) if i not in axes])

    def unsqueeze(self, axis=None, *, dim=None):
        axis = self._axis(axis if dim is None else dim, "unsqueeze", self.ndim + 1)
        return self.reshape(self.shape[:axis] + (1,) + self.shape[axis:])

    def expand(self, *shape):
        """Broadcast to `shape`; -1 keeps a dimension's size (PyTorch's convention)."""
        shape = tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], int) else shape
        lead = len(shape) - self.ndim
        shape = tuple(self.shape[i - lead] if n == -1 else n for i, n in enumerate(shape))
        return ops.Expand.apply(self, shape=shape)

    def __getitem__(self, index):
        return ops.GetItem.apply(self, index=_to_index(index))

    def masked_fill(self, mask, value):
        """Entries where `mask` is True become `value` (and get no gradient)."""
        return where(mask, self._lift(value), self)


def _axis_alias(axis, keepdims, dim, keepdim):
    """Accept PyTorch's dim/keepdim as well as NumPy's axis/keepdims."""
    return (axis if dim is None else dim), (keepdims if keepdim is None else keepdim)


def _to_index(index):
    """Tensors inside an index become their arrays; lists become integer arrays."""
    if isinstance(index, tuple):
        return tuple(_to_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, list):
        return np.asarray(index)
    return index


def cat(tensors, axis=0, *, dim=None):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: needs at least one tensor")
    return ops.Cat.apply(*tensors, axis=axis if dim is None else dim)


def stack(tensors, axis=0, *, dim=None):
    axis = axis if dim is None else dim
    return cat([t.unsqueeze(axis) for t in tensors], axis=axis)


def where(condition, a, b):
    """Elementwise `a if condition else b`; `condition` (bool) gets no gradient."""
    cond = condition.data if isinstance(condition, Tensor) else condition
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError("where: at least one of a, b must be a Tensor")
    ref = a if isinstance(a, Tensor) else b
    return ops.Where.apply(ref._lift(a), ref._lift(b), cond=cond)

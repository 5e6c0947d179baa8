"""Reductions over axes, and the numerically stable softmax family."""

import numpy as np

from tinygen.autograd import Function
from tinygen.backend import get_array_module, row_maxes


def normalize_axis(axis, ndim):
    """None -> all axes; int or tuple (negatives allowed) -> sorted tuple of positives."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dims")
        out.append(a % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"axis {axis} repeats an axis")
    return tuple(sorted(out))


def _keep_dims(grad, shape, axes, keepdims):
    """Put back the reduced axes as size 1 so grad broadcasts against the input."""
    return grad if keepdims else grad.reshape(
        [1 if i in axes else n for i, n in enumerate(shape)])


class Sum(Function):
    def forward(self, x, axis=None, keepdims=False):
        self.shape, self.axes, self.keepdims = x.shape, normalize_axis(axis, x.ndim), keepdims
        return x.sum(axis=self.axes, keepdims=keepdims)

    def backward(self, grad):
        grad = _keep_dims(grad, self.shape, self.axes, self.keepdims)
        return get_array_module(grad).broadcast_to(grad, self.shape)


class Mean(Sum):
    def forward(self, x, axis=None, keepdims=False):
        out = super().forward(x, axis, keepdims)
        count = 1
        for a in self.axes:
            count *= x.shape[a]
        self.scale = 1.0 / count if count else float("nan")  # mean of nothing: NaN
        return out * self.scale

    def backward(self, grad):
        return super().backward(grad * self.scale)


class Max(Function):
    """max over axes. Where several entries tie for the max, the gradient is split equally
    between them (like torch.amax), so a tie never gets more than the total gradient."""

    reduce = "max"

    def forward(self, x, axis=None, keepdims=False):
        if x.size == 0:
            raise ValueError(f"{self.reduce} of an empty tensor has no value")
        self.axes, self.keepdims = normalize_axis(axis, x.ndim), keepdims
        out = getattr(x, self.reduce)(axis=self.axes, keepdims=True)
        self.mask = x == out
        return out if keepdims else out.reshape(
            [n for i, n in enumerate(x.shape) if i not in self.axes])

    def backward(self, grad):
        grad = _keep_dims(grad, self.mask.shape, self.axes, self.keepdims)
        count = self.mask.sum(axis=self.axes, keepdims=True, dtype=grad.dtype)
        return self.mask * (grad / count)


def _max(x, axis):
    """x.max(axis, keepdims=True); over the last axis backend.row_maxes (faster on NumPy)."""
    return row_maxes(x) if axis in (-1, x.ndim - 1) else x.max(axis=axis, keepdims=True)


class Softmax(Function):
    def forward(self, x, axis=-1):
        xp = get_array_module(x)
        e = xp.exp(x - _max(x, axis))  # shift by the max: no overflow
        e /= e.sum(axis=axis, keepdims=True)
        self.out, self.axis = e, axis
        return e

    def backward(self, grad):
        y = self.out  # dL/dx = y * (g - sum(g * y))
        return y * (grad - (grad * y).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    def forward(self, x, axis=-1):
        xp = get_array_module(x)
        shifted = x - _max(x, axis)
        self.out = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        self.axis = axis
        return self.out

    def backward(self, grad):
        xp = get_array_module(grad)  # dL/dx = g - softmax(x) * sum(g)
        return grad - xp.exp(self.out) * grad.sum(axis=self.axis, keepdims=True)


class Min(Max):
    """min over axes; ties split the gradient like Max. (Not −max(−x): negating wraps
    unsigned integers and the most negative int.)"""

    reduce = "min"


class Prod(Function):
    """The product over axes. d/dxᵢ = Π_{j≠i} xⱼ, computed as the product of everything
    before i times everything after i (two cumulative products), so zeros are exact."""

    def forward(self, x, axis=None, keepdims=False):
        self.x, self.axes, self.keepdims = x, normalize_axis(axis, x.ndim), keepdims
        return x.prod(axis=self.axes, keepdims=keepdims)

    def backward(self, grad):
        xp = get_array_module(grad)
        x, axes = self.x, self.axes
        grad = _keep_dims(grad, x.shape, axes, self.keepdims)
        rest = [i for i in range(x.ndim) if i not in axes]
        moved = x.transpose(rest + list(axes)).reshape([x.shape[i] for i in rest] + [-1])
        ones = xp.ones(moved.shape[:-1] + (1,), dtype=x.dtype)
        before = xp.cumprod(xp.concatenate([ones, moved[..., :-1]], -1), axis=-1)
        after = xp.cumprod(xp.concatenate([ones, moved[..., :0:-1]], -1), axis=-1)[..., ::-1]
        others = (before * after).reshape([x.shape[i] for i in rest] + [x.shape[i] for i in axes])
        inverse = np.argsort(rest + list(axes))
        return grad * others.transpose(inverse)

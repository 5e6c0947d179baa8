"""Ops that move or select elements without arithmetic: reshape, permute, expand,
indexing and concatenation."""

import numpy as np

from tinygen.autograd import Function
from tinygen.backend import check_index_bounds, device_of, get_array_module, index_add, to_device


class Reshape(Function):
    def forward(self, x, shape):
        self.shape = x.shape
        return x.reshape(shape)

    def backward(self, grad):
        return grad.reshape(self.shape)


class Permute(Function):
    def forward(self, x, axes):
        self.axes = axes
        return x.transpose(axes)

    def backward(self, grad):
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a] = i
        return grad.transpose(inverse)


class Expand(Function):
    """Broadcast to a bigger shape (a view); the engine sums the gradient back down."""

    def forward(self, x, shape):
        return get_array_module(x).broadcast_to(x, shape)

    def backward(self, grad):
        return grad


def _is_basic(index):
    """True for slices, ints, None and Ellipsis only: then no element is picked twice."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, slice)) for p in parts)


def _index_on(xp, index):
    """Index arrays moved to the module of the array they index (NumPy indices for CuPy)."""
    if isinstance(index, tuple):
        return tuple(_index_on(xp, i) for i in index)
    return xp.asarray(index) if hasattr(index, "dtype") else index


def _check_bounds(shape, index):
    """CuPy wraps out-of-range integer-array indices: check them as NumPy would raise (on
    the host for NumPy indices, queued on the device for CuPy ones: no sync)."""
    parts = index if isinstance(index, tuple) else (index,)
    is_mask = [getattr(p, "dtype", None) == np.bool_ for p in parts]
    used = sum(p.ndim if m else p is not None and p is not Ellipsis
               for p, m in zip(parts, is_mask))
    axis = 0
    for p, m in zip(parts, is_mask):
        if p is Ellipsis:
            axis += len(shape) - used
        elif p is not None:
            if not m and getattr(p, "dtype", None) is not None and p.dtype.kind in "iu" and (
                    axis < len(shape)):
                check_index_bounds(p, -shape[axis], shape[axis], "getitem")
            axis += p.ndim if m else 1


class GetItem(Function):
    def forward(self, x, index):
        xp = get_array_module(x)
        if xp is not np:
            _check_bounds(x.shape, index)
        index = _index_on(xp, index)
        self.shape, self.dtype, self.index = x.shape, x.dtype, index
        return x[index]

    def backward(self, grad):
        xp = get_array_module(grad)
        gx = xp.zeros(self.shape, dtype=self.dtype)
        index = self.index
        if _is_basic(index):
            gx[index] = grad
        elif hasattr(index, "dtype") and index.dtype.kind in "iu":  # x[idx]: rows, repeats add
            index_add(gx, index.reshape(-1) % self.shape[0], grad.reshape(-1, *self.shape[1:]))
        else:  # integer arrays may repeat an index: add every copy's gradient, don't overwrite
            xp.add.at(gx, index, grad)
        return gx


class Cat(Function):
    def forward(self, *xs, axis=0):
        self.axis = axis
        self.splits = []
        total = 0
        for x in xs[:-1]:
            total += x.shape[axis]
            self.splits.append(total)
        return get_array_module(xs[0]).concatenate(xs, axis=axis)

    def backward(self, grad):
        return tuple(get_array_module(grad).split(grad, self.splits, axis=self.axis))


class ToDevice(Function):
    """Copy between CPU and GPU; the gradient travels back the other way."""

    def forward(self, x, device):
        self.device = device_of(x)
        return to_device(x, device)

    def backward(self, grad):
        return to_device(grad, self.device)

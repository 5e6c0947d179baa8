"""Ops that pick or place entries by index arrays along one axis (torch.gather family)."""

from tinygen.autograd import Function
from tinygen.backend import get_array_module


def along_axis_index(xp, index, axis):
    """Index arrays selecting out[i][j][k] = x[i][index[i][j][k]][k] (axis=1), etc."""
    grids = list(xp.indices(index.shape, sparse=True))
    grids[axis] = index
    return tuple(grids)


class Gather(Function):
    """out[..., i, ...] = x[..., index[..., i, ...], ...] along `axis` (torch.gather,
    np.take_along_axis); the gradient adds back into the picked places (repeats add)."""

    def forward(self, x, index, axis):
        xp = get_array_module(x)
        self.shape, self.where = x.shape, along_axis_index(xp, xp.asarray(index), axis)
        return x[self.where]

    def backward(self, grad):
        xp = get_array_module(grad)
        gx = xp.zeros(self.shape, dtype=grad.dtype)
        xp.add.at(gx, self.where, grad)
        return gx


class ScatterAdd(Function):
    """out = x, then out[..., index[..., i, ...], ...] += src[..., i, ...] (torch.scatter_add)."""

    def forward(self, x, src, index, axis):
        xp = get_array_module(x)
        self.where = along_axis_index(xp, xp.asarray(index), axis)
        out = x.copy()
        xp.add.at(out, self.where, src[tuple(slice(0, n) for n in index.shape)])
        self.src_shape = src.shape
        return out

    def backward(self, grad):
        xp = get_array_module(grad)
        gsrc = None
        if self.needs_input_grad[1]:
            gsrc = xp.zeros(self.src_shape, dtype=grad.dtype)
            part = grad[self.where]
            gsrc[tuple(slice(0, n) for n in part.shape)] = part
        return grad, gsrc


class Scatter(Function):
    """out = x, then out[..., index[..., i, ...], ...] = src[..., i, ...] (torch.scatter).
    Overwritten entries of x get no gradient; src gets the gradient of where it landed.
    (With repeated indices the winner is unspecified, as in PyTorch.)"""

    def forward(self, x, src, index, axis):
        xp = get_array_module(x)
        self.where = along_axis_index(xp, xp.asarray(index), axis)
        part = src[tuple(slice(0, n) for n in index.shape)]
        out = x.copy()
        out[self.where] = part
        self.src_shape = src.shape
        return out

    def backward(self, grad):
        xp = get_array_module(grad)
        gx = grad.copy()
        gx[self.where] = 0
        gsrc = None
        if self.needs_input_grad[1]:
            gsrc = xp.zeros(self.src_shape, dtype=grad.dtype)
            part = grad[self.where]
            gsrc[tuple(slice(0, n) for n in part.shape)] = part
        return gx, gsrc


class ScatterMax(Function):
    """out = x, then out[..., index[..., i, ...], ...] = max(out[...], src[..., i, ...])
    (torch.scatter_reduce "amax", include_self=True; "amin" negates). The gradient goes to
    every entry (of x or src) equal to the result, split equally between ties, as amax's."""

    def forward(self, x, src, index, axis):
        xp = get_array_module(x)
        self.where = along_axis_index(xp, xp.asarray(index), axis)
        part = src[tuple(slice(0, n) for n in index.shape)]
        out = x.copy()
        xp.maximum.at(out, self.where, part)
        self.x_wins = x == out
        self.src_wins = part == out[self.where]
        self.count = self.x_wins.astype(x.dtype)
        xp.add.at(self.count, self.where, self.src_wins.astype(x.dtype))
        self.src_shape = src.shape
        return out

    def backward(self, grad):
        xp = get_array_module(grad)
        share = grad / self.count
        gsrc = None
        if self.needs_input_grad[1]:
            gsrc = xp.zeros(self.src_shape, dtype=grad.dtype)
            part = share[self.where] * self.src_wins
            gsrc[tuple(slice(0, n) for n in part.shape)] = part
        return share * self.x_wins, gsrc

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


def scatter_multiply(xp, out, part, index, axis):
    """out[..., index[..., i, ...], ...] *= part[..., i, ...] in place, exactly. CuPy has no
    multiply.at, so the product goes one position i along `axis` at a time: within one i,
    each row of `index` names one target, so the targets are distinct and a plain fancy
    assignment is safe (index.shape[axis] launches, no host sync)."""
    for i in range(index.shape[axis]):
        pick = (slice(None),) * axis + (slice(i, i + 1),)
        where = along_axis_index(xp, index[pick], axis)
        out[where] = out[where] * part[pick]
    return out


class ScatterProd(Function):
    """out = x (or ones where include_self=False and something lands), then
    out[..., index[..., i, ...], ...] *= src[..., i, ...] (torch.scatter_reduce "prod").

    The gradient of one factor is the product of the others. Dividing the result by the
    factor fails at zeros, so, as PyTorch's scatter_reduce_backward does: x's gradient is
    the product with x's zeros masked to 1, divided by the masked x; a src entry that is
    the only zero of its slot gets the product of the slot with that zero masked to 1;
    every other src entry gets result / src (0 where the slot holds a zero elsewhere)."""

    def forward(self, x, src, index, axis, include_self=True):
        xp = get_array_module(x)
        self.index, self.axis, self.include_self = xp.asarray(index), axis, include_self
        self.where = along_axis_index(xp, self.index, axis)
        self.part = src[tuple(slice(0, n) for n in index.shape)]
        self.x, self.src_shape = x, src.shape
        self.out = scatter_multiply(xp, self._start(x), self.part, self.index, axis)
        return self.out

    def _start(self, x):
        """A copy of x to multiply into: x itself, or 1 at the targets without include_self."""
        out = x.copy()
        if not self.include_self:
            out[self.where] = 1
        return out

    def backward(self, grad):
        xp = get_array_module(grad)
        x, part, where = self.x, self.part, self.where
        gx = gsrc = None
        if self.needs_input_grad[0]:
            masked_x = xp.where(x == 0, 1, x)
            others = scatter_multiply(xp, masked_x.copy(), part, self.index, self.axis)
            gx = grad * others / masked_x
            if not self.include_self:  # x was replaced at the targets: no gradient there
                gx[where] = 0
        if self.needs_input_grad[1]:
            src_zero = part == 0
            zeros = xp.zeros(x.shape, dtype=grad.dtype)
            xp.add.at(zeros, where, src_zero.astype(grad.dtype))
            single_zero = src_zero & (zeros[where] == 1)
            # the slot's product with that one zero masked to 1: the product of the others
            without = scatter_multiply(xp, self._start(x), xp.where(single_zero, 1, part),
                                       self.index, self.axis)
            part_grad = xp.where(single_zero, (grad * without)[where],
                                 (grad * self.out)[where] / xp.where(src_zero, 1, part))
            gsrc = xp.zeros(self.src_shape, dtype=grad.dtype)
            gsrc[tuple(slice(0, n) for n in part_grad.shape)] = part_grad
        return gx, gsrc

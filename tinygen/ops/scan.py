"""Cumulative ops along one axis."""

from tinygen.autograd import Function
from tinygen.backend import get_array_module


def _reverse_cumsum(g, axis):
    """Σ_{j >= i} g_j along `axis`: the adjoint of a cumulative sum."""
    xp = get_array_module(g)
    return xp.flip(xp.cumsum(xp.flip(g, axis), axis=axis), axis)


class Cumsum(Function):
    def forward(self, x, axis):
        self.axis = axis
        return get_array_module(x).cumsum(x, axis=axis, dtype=x.dtype if x.dtype.kind == "f"
                                          else None)

    def backward(self, grad):
        return _reverse_cumsum(grad, self.axis)  # output j sums inputs i <= j


class Cumprod(Function):
    """yᵢ = Π_{j<=i} xⱼ. d/dxₖ Σ gᵢyᵢ = Σ_{i>=k} gᵢ yᵢ / xₖ where no product is 0; with a
    zero (or an underflow to one) the products are recomputed without xₖ, so it is exact."""

    def forward(self, x, axis):
        self.x, self.axis = x, axis
        self.out = get_array_module(x).cumprod(x, axis=axis)
        return self.out

    def backward(self, grad):
        xp = get_array_module(grad)
        x, axis = self.x, self.axis
        if not (abs(self.out) < xp.finfo(x.dtype).tiny).any():  # no zero, no underflow
            return _reverse_cumsum(grad * self.out, axis) / x
        # with zeros (or products that underflow to them): gx_k = Σ_{i>=k} g_i Π_{j<=i, j≠k} x_j, summed directly (O(n²) in n)
        xm = xp.moveaxis(x, axis, -1)
        gm = xp.moveaxis(grad, axis, -1)
        n = xm.shape[-1]
        gx = xp.zeros_like(xm)
        for k in range(n):
            without = xp.concatenate([xm[..., :k], xp.ones_like(xm[..., k:k + 1]),
                                      xm[..., k + 1:]], -1)
            prods = xp.cumprod(without, axis=-1)[..., k:]
            gx[..., k] = (gm[..., k:] * prods).sum(-1)
        return xp.moveaxis(gx, -1, axis)

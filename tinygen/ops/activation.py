"""Activation functions: the elementwise nonlinearities between layers.

Each is named `<Module>Function` because tinygen.nn has a Module of the same name
(nn.ReLU, nn.GELU, ...), as PyTorch's docs name theirs."""

import math

import numpy as np

from tinygen.autograd import Function
from tinygen.backend import get_array_module, positive_part
from tinygen.blocked import in_row_blocks
from tinygen.ops import kernel_calls, kernels


class ReLUFunction(Function):
    def forward(self, x):
        self.out = positive_part(x)  # max(x, 0); faster than np.maximum(x, 0) (backend.py)
        return self.out

    def backward(self, grad):
        return grad * (self.out > 0)  # the kink at 0 gets gradient 0, as in PyTorch


class TanhFunction(Function):
    def forward(self, x):
        self.out = get_array_module(x).tanh(x)
        return self.out

    def backward(self, grad):
        return grad * (1 - self.out * self.out)


class SigmoidFunction(Function):
    def forward(self, x):
        # 1/(1+e^-x) overflows for large negative x; this form is stable everywhere
        self.out = 0.5 * (get_array_module(x).tanh(0.5 * x) + 1)
        return self.out

    def backward(self, grad):
        return grad * self.out * (1 - self.out)


class GELUFunction(Function):
    """GELU, tanh form (GPT-2): 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))).

    Replaces the composition `0.5 * x * (1 + (K * (x + 0.044715 * x ** 3)).tanh())`.
    Fused for speed and memory: one node keeping x and σ(2z) instead of eight nodes, each
    holding an array the size of x. Computed as x σ(2z), z = √(2/π) (x + 0.044715 x³):
    the same function, as 0.5 (1 + tanh z) = σ(2z) = 1 / (1 + e^(-2z)), but one exp, which
    NumPy vectorises, instead of its tanh, which it does not on AVX2 (on [768, 512]: 0.53
    against 1.06 ms). Both passes run in row blocks that stay in cache (tinygen.blocked;
    docs/cpu_speed.md has the figures); each block function is the formula, in place."""

    K = math.sqrt(2.0 / math.pi)

    def forward(self, x):
        self.x = x
        if kernels.use("gelu", x):                 # activation.cu, when switched on
            self.s = None                          # its backward recomputes from x
            return kernel_calls.gelu_forward_cuda(x)
        xp = get_array_module(x)
        out, self.s = xp.empty_like(x), xp.empty_like(x)
        in_row_blocks(self._forward, x, out, self.s)
        return out

    @classmethod
    def _forward(cls, x, out, s):
        xp = get_array_module(x)
        xp.multiply(x, x, out=s)           # s = -2z = -2√(2/π) (x + 0.044715 x³)
        s *= -2 * cls.K * 0.044715
        s -= 2 * cls.K
        s *= x
        # e^(-2z) = inf for x below about -9 (float32), and 1 / (1 + inf) = 0 is the right
        # σ there: no clamp (np.minimum is a slow ufunc on AVX2), only no warning. -inf
        # gives -inf · 0 = nan, as PyTorch's tanh GELU does.
        with np.errstate(over="ignore", invalid="ignore"):
            xp.exp(s, out=s)
            s += 1
            xp.divide(1.0, s, out=s)       # s = σ(2z) = 0.5 (1 + tanh z); faster than reciprocal
            xp.multiply(x, s, out=out)     # GELU = x σ(2z)

    def backward(self, grad):
        if self.s is None:                         # the kernel (the reference for another dtype)
            return kernel_calls.gelu_backward(self.x, grad)
        gx = get_array_module(grad).empty_like(self.x)
        in_row_blocks(self._backward, grad, self.x, self.s, gx)
        return gx

    @classmethod
    def _backward(cls, grad, x, s, gx):
        # d/dx x σ(2z) = σ + x · 2σ(1 - σ) z' = σ (1 + 2x z' (1 - σ)),
        # z' = √(2/π) (1 + 3 · 0.044715 x²)
        xp = get_array_module(x)
        d = xp.multiply(x, x)
        d *= 6 * 0.044715 * cls.K
        d += 2 * cls.K
        d *= x                             # 2x z'
        xp.multiply(d, s, out=gx)
        d -= gx                            # 2x z' (1 - σ)
        d += 1
        d *= s
        xp.multiply(d, grad, out=gx)


class SwiGLUFunction(Function):
    """silu(a) b = a σ(a) b for a, b the two halves of x's last axis (Shazeer 2020, "GLU
    Variants Improve Transformer"; LLaMA's MLP, after its one projection to both halves):
    x [..., 2H] -> [..., H].

    Replaces the composition `a, b = x.split(H, -1); F.silu(a) * b`. Fused for speed and
    memory: one node keeping σ(a) and silu(a) (a and b are views of x, which the graph keeps
    anyway) where the composition is four nodes, and backward writes both halves'
    gradients into one array shaped like x, where split's backward fills an array of x's
    size with zeros for each half and the engine adds the two. The halves are strided
    views, slower to read and write than whole arrays, so each is read or written as few
    times as the formula allows. σ(a) = 1 / (1 + e^(-a)), one exp, as in GELUFunction;
    both passes run in row blocks (tinygen.blocked)."""

    def forward(self, x):
        if x.ndim == 0 or x.shape[-1] % 2:
            raise ValueError(f"the last axis must have an even size (two halves), got "
                             f"shape {tuple(x.shape)}")
        xp = get_array_module(x)
        out = xp.empty(x.shape[:-1] + (x.shape[-1] // 2,), x.dtype)
        self.x, self.s, self.silu = x, xp.empty_like(out), xp.empty_like(out)
        in_row_blocks(self._forward, *map(_at_least_2d, (x, out, self.s, self.silu)))
        return out

    @staticmethod
    def _forward(x, out, s, silu):
        xp, H = get_array_module(x), s.shape[-1]
        a, b = x[..., :H], x[..., H:]
        xp.negative(a, out=s)
        # e^(-a) = inf for a below about -88 (float32), and 1 / (1 + inf) = 0 is the right
        # σ there; -inf gives -inf · 0 = nan, as PyTorch's silu does
        with np.errstate(over="ignore", invalid="ignore"):
            xp.exp(s, out=s)
            s += 1
            xp.divide(1.0, s, out=s)                 # s = σ(a)
            xp.multiply(a, s, out=silu)              # silu(a) = a σ(a)
        xp.multiply(silu, b, out=out)

    def backward(self, grad):
        gx = get_array_module(grad).empty_like(self.x)
        in_row_blocks(self._backward, *map(_at_least_2d, (grad, self.x, self.s, self.silu, gx)))
        return gx

    @staticmethod
    def _backward(grad, x, s, silu, gx):
        # ∂/∂b = silu(a);  ∂/∂a = b (σ + a σ (1 - σ)) = b (σ + silu (1 - σ))
        xp, H = get_array_module(x), s.shape[-1]
        xp.multiply(grad, silu, out=gx[..., H:])
        d = xp.subtract(1, s)
        d *= silu
        d += s
        d *= grad
        xp.multiply(d, x[..., H:], out=gx[..., :H])


def _at_least_2d(a):
    """a with at least two axes (a view): in_row_blocks cuts the first."""
    return a if a.ndim > 1 else a[None]


class LeakyReLUFunction(Function):
    """x where x > 0, else negative_slope · x.

    Replaces the composition `tg.where(x > 0, x, x * negative_slope)`. Fused for speed:
    the slope per element, 1 or negative_slope, is built once with two in-place passes and
    saved, so forward is one multiply and backward is grad times the same array
    (`xp.where` with scalar branches, the obvious way to write it, is far slower in NumPy)."""

    def forward(self, x, negative_slope=0.01):
        scale = (x > 0).astype(x.dtype)
        scale *= 1 - negative_slope
        scale += negative_slope               # 1 where x > 0, negative_slope elsewhere
        self.scale = scale
        return x * scale

    def backward(self, grad):
        return grad * self.scale

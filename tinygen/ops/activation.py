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

"""Activation functions: the elementwise nonlinearities between layers.

Each is named `<Module>Function` because tinygen.nn has a Module of the same name
(nn.ReLU, nn.GELU, ...), as PyTorch's docs name theirs."""

import math

from tinygen.autograd import Function
from tinygen.backend import get_array_module


class ReLUFunction(Function):
    def forward(self, x):
        self.out = get_array_module(x).maximum(x, 0)
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
    Fused for speed and memory: one node keeping x and the tanh instead of eight nodes,
    each holding an array the size of x, and the arithmetic done in place."""

    K = math.sqrt(2.0 / math.pi)

    def forward(self, x):
        xp = get_array_module(x)
        inner = x * x
        inner *= 0.044715 * self.K
        inner += self.K
        inner *= x                        # √(2/π) (x + 0.044715 x³)
        self.x, self.t = x, xp.tanh(inner, out=inner)
        out = self.t + 1
        out *= x
        out *= 0.5
        return out

    def backward(self, grad):
        x, t = self.x, self.t
        # d/dx = 0.5 (1 + t) + 0.5 x (1 - t²) √(2/π) (1 + 3 · 0.044715 x²)
        dinner = x * x
        dinner *= 3 * 0.044715 * self.K
        dinner += self.K
        sech2 = t * t
        sech2 -= 1
        dinner *= sech2                   # -(1 - t²) · d(inner)/dx
        dinner *= x
        dinner -= t
        dinner -= 1
        dinner *= -0.5 * grad
        return dinner


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

"""Elementwise primitives. Broadcasting is NumPy's; the engine un-broadcasts gradients.
(The nonlinearities between layers, relu, tanh, sigmoid, gelu, are in activation.py.)"""

import numpy as np

from tinygen.autograd import Function
from tinygen.backend import get_array_module


class Add(Function):
    def forward(self, a, b):
        return a + b

    def backward(self, grad):
        return grad, grad


class Sub(Function):
    def forward(self, a, b):
        return a - b

    def backward(self, grad):
        return grad, -grad if self.needs_input_grad[1] else None


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, grad):
        ga = grad * self.b if self.needs_input_grad[0] else None
        gb = grad * self.a if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, grad):
        ga = grad / self.b
        gb = -ga * self.a / self.b if self.needs_input_grad[1] else None  # d(a/b)/db = -a/b²
        return ga, gb


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, grad):
        return -grad


class Pow(Function):
    """x ** p, computed by the array library's power (not exp(p log x)): 0 ** 0 = 1,
    (−2) ** 3 = −8 and inf ** 0 = 1, as in PyTorch. `p` is a constant number, or a second
    input array (tensor ** tensor), which then gets d/dp = xᵖ · log x."""

    def forward(self, x, p):
        self.x, self.p = x, p
        self.out = x ** p
        return self.out

    def backward(self, grad):
        xp = get_array_module(grad)
        p = self.p
        if isinstance(p, (int, float)):
            if p == 0:
                return grad * 0  # x ** 0 is constant (and 0 * 0 ** -1 would be NaN at x = 0)
            return grad * p * self.x ** (p - 1)  # at x = 0, p < 1: inf, as in PyTorch
        # tensor exponent: PyTorch's masks, 0 where p = 0 (d/dx) or x = 0 and p >= 0 (d/dp)
        gx = gp = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.needs_input_grad[0]:
                gx = xp.where(p == 0, 0, grad * p * self.x ** (p - 1))
            if self.needs_input_grad[1]:
                gp = xp.where((self.x == 0) & (p >= 0), 0, grad * self.out * xp.log(self.x))
        return gx, gp


class Exp(Function):
    def forward(self, x):
        self.out = get_array_module(x).exp(x)
        return self.out

    def backward(self, grad):
        return grad * self.out


class Log(Function):
    def forward(self, x):
        self.x = x
        return get_array_module(x).log(x)

    def backward(self, grad):
        return grad / self.x


class Sqrt(Function):
    def forward(self, x):
        self.out = get_array_module(x).sqrt(x)
        return self.out

    def backward(self, grad):
        return grad / (2 * self.out)


class Abs(Function):
    def forward(self, x):
        self.x = x
        return abs(x)

    def backward(self, grad):
        return grad * get_array_module(self.x).sign(self.x)


class Clip(Function):
    def forward(self, x, lo, hi):
        self.inside = (x >= (lo if lo is not None else x)) & (x <= (hi if hi is not None else x))
        return get_array_module(x).clip(x, lo, hi)

    def backward(self, grad):
        return grad * self.inside


class Cast(Function):
    def forward(self, x, dtype):
        self.dtype = x.dtype
        return x.astype(dtype)

    def backward(self, grad):
        return grad.astype(self.dtype)


class Where(Function):
    """where(cond, a, b); `cond` is a boolean array and gets no gradient."""

    def forward(self, a, b, cond):
        self.cond = cond
        return get_array_module(a).where(cond, a, b)

    def backward(self, grad):
        xp = get_array_module(grad)
        zero = xp.zeros((), dtype=grad.dtype)
        ga = xp.where(self.cond, grad, zero) if self.needs_input_grad[0] else None
        gb = xp.where(self.cond, zero, grad) if self.needs_input_grad[1] else None
        return ga, gb


class Maximum(Function):
    """Elementwise max of two tensors. A tie splits the gradient equally between them (as
    PyTorch does), so the two never get more than the total."""

    pick = "maximum"

    def forward(self, a, b):
        xp = get_array_module(a)
        out = getattr(xp, self.pick)(a, b)
        self.wins_a, self.tie = (a == out), (a == b)
        return out

    def backward(self, grad):
        share = grad * (self.wins_a * (1 - 0.5 * self.tie)).astype(grad.dtype)
        return share, (grad - share) if self.needs_input_grad[1] else None


class Minimum(Maximum):
    pick = "minimum"


class Sin(Function):
    def forward(self, x):
        self.x = x
        return get_array_module(x).sin(x)

    def backward(self, grad):
        return grad * get_array_module(grad).cos(self.x)


class Cos(Function):
    def forward(self, x):
        self.x = x
        return get_array_module(x).cos(x)

    def backward(self, grad):
        return -grad * get_array_module(grad).sin(self.x)


class Asin(Function):
    def forward(self, x):
        self.x = x
        return get_array_module(x).arcsin(x)

    def backward(self, grad):
        return grad / get_array_module(grad).sqrt(1 - self.x * self.x)  # 1/√(1 − x²)


class Acos(Asin):
    def forward(self, x):
        self.x = x
        return get_array_module(x).arccos(x)

    def backward(self, grad):
        return -super().backward(grad)


class Atan(Function):
    def forward(self, x):
        self.x = x
        return get_array_module(x).arctan(x)

    def backward(self, grad):
        return grad / (1 + self.x * self.x)


class Atan2(Function):
    """atan2(y, x): d/dy = x / (x² + y²), d/dx = −y / (x² + y²)."""

    def forward(self, y, x):
        self.y, self.x = y, x
        return get_array_module(y).arctan2(y, x)

    def backward(self, grad):
        g = grad / (self.x * self.x + self.y * self.y)
        return g * self.x, -g * self.y if self.needs_input_grad[1] else None


class Log1p(Function):
    def forward(self, x):
        self.x = x
        return get_array_module(x).log1p(x)

    def backward(self, grad):
        return grad / (1 + self.x)


class Expm1(Function):
    def forward(self, x):
        self.out = get_array_module(x).expm1(x)
        return self.out

    def backward(self, grad):
        return grad * (self.out + 1)


class Floor(Function):
    """A piecewise-constant function: its gradient is 0 wherever it exists (PyTorch's too)."""

    name = "floor"

    def forward(self, x):
        return getattr(get_array_module(x), self.name)(x)

    def backward(self, grad):
        return get_array_module(grad).zeros_like(grad)


class Ceil(Floor):
    name = "ceil"


class Round(Floor):
    name = "round"


class Trunc(Floor):
    name = "trunc"


class Sign(Floor):
    name = "sign"


class Erf(Function):
    """erf(x) = 2/√π ∫₀ˣ e^(−t²) dt to float64 accuracy (|error| < 1e-14, so gradcheck's
    central differences match the exact derivative 2/√π e^(−x²)). NumPy and CuPy's core
    have no erf: for |x| < 2.5 the Maclaurin series (Abramowitz & Stegun 7.1.5), beyond it
    1 − erfc(x) with erfc's continued fraction (A&S 7.1.14), each a fixed 50 terms."""

    def forward(self, x):
        xp = get_array_module(x)
        self.x = x
        a = abs(x).astype(np.float64)
        small = xp.minimum(a, 2.5)  # 2/√π Σ (−1)ⁿ x^(2n+1) / (n! (2n+1))
        sq, term, total = small * small, small, small
        for n in range(1, 50):
            term = term * -sq / n
            total = total + term / (2 * n + 1)
        big = xp.maximum(a, 2.5)    # erfc(x) = e^(−x²) / (√π (x + (1/2)/(x + 1/(x + ...))))
        fraction = big
        for k in range(50, 0, -1):
            fraction = big + (k / 2) / fraction
        tail = 1 - xp.exp(-big * big) / (1.7724538509055159 * fraction)
        out = xp.sign(x) * xp.where(a < 2.5, 1.1283791670955126 * total, tail)
        return out.astype(x.dtype, copy=False)

    def backward(self, grad):
        xp = get_array_module(grad)
        return grad * (1.1283791670955126 * xp.exp(-self.x * self.x))  # 2/√π e^(−x²)

"""Elementwise primitives. Broadcasting is NumPy's; the engine un-broadcasts gradients.
(The nonlinearities between layers, relu, tanh, sigmoid, gelu, are in activation.py.)"""

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
    """x ** p for a constant exponent p (tensor ** tensor is exp(p * log x) in tensor.py)."""

    def forward(self, x, p):
        self.x, self.p = x, p
        return x ** p

    def backward(self, grad):
        if self.p == 0:
            return grad * 0  # x ** 0 is constant (and 0 * 0 ** -1 would be NaN at x = 0)
        return grad * self.p * self.x ** (self.p - 1)


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

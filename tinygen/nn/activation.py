"""Activation Modules (PyTorch's names, arguments and defaults); each calls tinygen.nn.F."""

from tinygen.nn import functional as F
from tinygen.nn.module import Module


class GELU(Module):
    """Exact GELU x Φ(x) by default, as PyTorch; approximate='tanh' is GPT-2's form."""

    def __init__(self, approximate="none"):
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, approximate=self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class _Elementwise(Module):
    """A Module for an F function without options."""

    fn = None

    def forward(self, x):
        return type(self).fn(x)


class SiLU(_Elementwise):
    fn = staticmethod(F.silu)


class Mish(_Elementwise):
    fn = staticmethod(F.mish)


class SELU(_Elementwise):
    fn = staticmethod(F.selu)


class Hardswish(_Elementwise):
    fn = staticmethod(F.hardswish)


class Hardsigmoid(_Elementwise):
    fn = staticmethod(F.hardsigmoid)


class ReLU6(_Elementwise):
    fn = staticmethod(F.relu6)


class LogSigmoid(_Elementwise):
    fn = staticmethod(F.logsigmoid)


class Softsign(_Elementwise):
    fn = staticmethod(F.softsign)


class Identity(Module):
    """Returns its input; accepts and ignores any arguments, as PyTorch's does."""

    def __init__(self, *args, **kwargs):
        pass

    def forward(self, x):
        return x


class Softplus(Module):
    def __init__(self, beta=1.0, threshold=20.0):
        self.beta, self.threshold = beta, threshold

    def forward(self, x):
        return F.softplus(x, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class ELU(Module):
    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def forward(self, x):
        return F.elu(x, self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}"


class CELU(ELU):
    def forward(self, x):
        return F.celu(x, self.alpha)


class Hardtanh(Module):
    def __init__(self, min_val=-1.0, max_val=1.0):
        if min_val > max_val:
            raise ValueError(f"Hardtanh: min_val {min_val} must not exceed max_val {max_val}")
        self.min_val, self.max_val = min_val, max_val

    def forward(self, x):
        return F.hardtanh(x, self.min_val, self.max_val)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}"


class GLU(Module):
    def __init__(self, dim=-1):
        self.dim = dim

    def forward(self, x):
        return F.glu(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class Softmax(Module):
    """softmax along dim (PyTorch has no default axis worth relying on: pass dim)."""

    def __init__(self, dim=-1):
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, dim=self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, x):
        return F.log_softmax(x, dim=self.dim)

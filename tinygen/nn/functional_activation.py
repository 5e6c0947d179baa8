"""Activations of tinygen.nn.functional beyond the fused ones (PyTorch's names and defaults).

Each is a short composition of Tensor ops (every op has its own hand-written backward), so
no new derivative is written here: the formulas are PyTorch's documented ones. Where the
naive formula overflows (softplus, log-sigmoid, mish) the composition is the stable form.
"""

import math

from tinygen import ops
from tinygen.tensor import where

SQRT1_2 = 1 / math.sqrt(2)
# SELU's constants (Klambauer et al. 2017, eq. 14), as in PyTorch
SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def gelu(x, approximate="none"):
    """GELU (Hendrycks & Gimpel 2016): x Φ(x) = 0.5 x (1 + erf(x/√2)), PyTorch's default;
    approximate='tanh' is GPT-2's form 0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³))), fused."""
    if approximate == "tanh":
        return ops.GELUFunction.apply(x)
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return 0.5 * x * (1 + (x * SQRT1_2).erf())


def silu(x):
    """x σ(x) (SiLU / swish, Elfwing et al. 2017)."""
    return x * x.sigmoid()


def swiglu(x):
    """silu(a) * b for a, b the first and second halves of x's last axis: LLaMA's gated
    MLP after its one projection to both (Shazeer 2020). Not in PyTorch, which writes
    `a, b = x.chunk(2, -1); F.silu(a) * b`; fused here (ops.SwiGLUFunction)."""
    return ops.SwiGLUFunction.apply(x)


def softplus(x, beta=1.0, threshold=20.0):
    """log(1 + e^(βx)) / β, and x itself where βx > threshold (PyTorch's linear regime).
    Written relu(βx) + log1p(e^(-|βx|)): no overflow for large |x|."""
    bx = x * beta
    soft = (bx.relu() + (-bx.abs()).exp().log1p()) / beta
    return where(bx.data > threshold, x, soft)


def elu(x, alpha=1.0):
    """x where x > 0, else α (eˣ - 1) (Clevert et al. 2016)."""
    return where(x.data > 0, x, alpha * x.minimum(0).expm1())


def selu(x):
    """scale · elu(x, α) with SELU's self-normalising constants."""
    return SELU_SCALE * elu(x, SELU_ALPHA)


def celu(x, alpha=1.0):
    """max(0, x) + min(0, α (e^(x/α) - 1)) (Barron 2017)."""
    return where(x.data > 0, x, alpha * (x.minimum(0) / alpha).expm1())


def mish(x):
    """x tanh(softplus(x)) (Misra 2019)."""
    return x * softplus(x).tanh()


def hardtanh(x, min_val=-1.0, max_val=1.0):
    """x clamped to [min_val, max_val]."""
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val {min_val} must not exceed max_val {max_val}")
    return x.clip(min_val, max_val)


def relu6(x):
    return hardtanh(x, 0.0, 6.0)


def hardsigmoid(x):
    """relu6(x + 3) / 6 (MobileNetV3, Howard et al. 2019)."""
    return (x + 3).clip(0.0, 6.0) / 6


def hardswish(x):
    """x · relu6(x + 3) / 6 (MobileNetV3)."""
    return x * hardsigmoid(x)


def logsigmoid(x):
    """log σ(x) = -softplus(-x), written min(x, 0) - log1p(e^(-|x|)): no overflow."""
    return x.minimum(0) - (-x.abs()).exp().log1p()


def softsign(x):
    """x / (1 + |x|)."""
    return x / (1 + x.abs())


def glu(x, dim=-1):
    """a σ(b) where a, b are the two halves of x along dim (Dauphin et al. 2017)."""
    n = x.shape[dim]
    if n % 2:
        raise ValueError(f"glu: dimension {dim} of the input {x.shape} must have an even "
                         f"size, got {n}")
    a, b = x.split(n // 2, dim)
    return a * b.sigmoid()


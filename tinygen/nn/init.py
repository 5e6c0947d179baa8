"""Weight initialisation, in place, drawing from tinygen's global generator."""

import math

from tinygen.backend import get_array_module
from tinygen.random import generator


def normal_(t, mean=0.0, std=1.0):
    t.data[...] = generator(t.device).standard_normal(t.shape, dtype=t.dtype) * std + mean
    return t


def uniform_(t, a=0.0, b=1.0):
    t.data[...] = generator(t.device).random(t.shape, dtype=t.dtype) * (b - a) + a
    return t


def zeros_(t):
    t.data[...] = 0
    return t


def ones_(t):
    t.data[...] = 1
    return t


def constant_(t, value):
    t.data[...] = value
    return t


def _fans(t):
    """(fan_in, fan_out) as PyTorch computes them: weight [out, in, *kernel] has fan_in =
    in · prod(kernel), fan_out = out · prod(kernel) (a 1-D tensor has no fans)."""
    if t.ndim < 2:
        raise ValueError(f"init: fan in and fan out need a tensor of 2 or more dims, got "
                         f"shape {t.shape}")
    receptive = math.prod(t.shape[2:]) if t.ndim > 2 else 1
    return t.shape[1] * receptive, t.shape[0] * receptive


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity (PyTorch's torch.nn.init.calculate_gain)."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                        "conv_transpose2d", "conv_transpose3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _kaiming_std(t, a, mode, nonlinearity):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(t)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)


def kaiming_uniform_(t, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """He et al. 2015: U(±gain · √(3 / fan)). PyTorch's Linear and Conv layers call it with
    a=√5, which gives U(±1/√fan_in)."""
    bound = math.sqrt(3.0) * _kaiming_std(t, a, mode, nonlinearity)
    return uniform_(t, -bound, bound)


def kaiming_normal_(t, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """He et al. 2015: N(0, gain² / fan)."""
    return normal_(t, 0.0, _kaiming_std(t, a, mode, nonlinearity))


def xavier_uniform_(t, gain=1.0):
    """Glorot & Bengio 2010: U(±gain · √(6 / (fan_in + fan_out)))."""
    fan_in, fan_out = _fans(t)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -bound, bound)


def xavier_normal_(t, gain=1.0):
    """Glorot & Bengio 2010: N(0, gain² · 2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(t)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def trunc_normal_(t, mean=0.0, std=1.0, a=-2.0, b=2.0):
    """N(mean, std²) truncated to [a, b] (absolute bounds, as PyTorch's): rejected draws
    are redrawn until every value lies inside (vectorised: one draw per round for the
    rejected entries only)."""
    if not a < b:
        raise ValueError(f"trunc_normal_: need a < b, got a={a}, b={b}")
    xp = get_array_module(t.data)
    out = xp.full(t.shape, xp.nan, dtype=t.dtype)
    bad = xp.ones(t.shape, dtype=bool)
    for _ in range(1000):
        n = int(bad.sum())
        if n == 0:
            break
        draw = generator(t.device).standard_normal((n,), dtype=t.dtype) * std + mean
        out[bad] = xp.where((draw >= a) & (draw <= b), draw, xp.nan)
        bad = xp.isnan(out)
    else:
        raise ValueError(f"trunc_normal_: [a, b] = [{a}, {b}] holds almost none of "
                         f"N({mean}, {std}²)")
    t.data[...] = out
    return t


def orthogonal_(t, gain=1.0):
    """Fill a 2-D weight with a (semi-)orthogonal matrix times `gain` (Saxe et al. 2014),
    as torch.nn.init.orthogonal_: the Q of the QR decomposition of a Gaussian matrix, with
    signs fixed by R's diagonal so that Q is uniformly distributed."""
    xp = get_array_module(t.data)
    rows, cols = t.shape
    flat = generator(t.device).standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T                                 # QR wants a tall matrix
    q, r = xp.linalg.qr(flat)
    q *= xp.sign(xp.diag(r))
    if rows < cols:
        q = q.T
    t.data[...] = gain * q
    return t

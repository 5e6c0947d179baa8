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
    receptive = math.prod(t.shape[2:]) if t.ndim > 2 else 1
    return t.shape[1] * receptive, t.shape[0] * receptive


def xavier_uniform_(t, gain=1.0):
    fan_in, fan_out = _fans(t)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -bound, bound)


def kaiming_uniform_(t, a=5 ** 0.5):
    """PyTorch's default for Linear and Conv weights: U(-1/√fan_in, 1/√fan_in) when a=√5."""
    fan_in, _ = _fans(t)
    gain = math.sqrt(2.0 / (1 + a * a))
    bound = gain * math.sqrt(3.0 / fan_in)
    return uniform_(t, -bound, bound)


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

"""Philox-4x32-10, the counter-based generator of ops/dropout.cu, in NumPy/CuPy array code.

Salmon, Moraes, Dror & Shaw, "Parallel random numbers: as easy as 1, 2, 3" (SC 2011); the
constants and round function are Random123's. A counter-based generator is a pure function
of (key, counter): nothing to advance, so any element can be drawn on its own, the same
(seed, offset) gives the same numbers on every device and every replay of a captured CUDA
graph, and dropout's backward regenerates its mask instead of keeping it.

The numbering, shared with dropout.cu so that CPU and GPU masks are bit-identical: element
i of a draw takes 32-bit word i % 4 of

    philox4x32_10(counter=(lo(i // 4), hi(i // 4), lo(offset), hi(offset)),
                  key=(lo(seed), hi(seed)))

and its uniform number is (word >> 8) * 2^-24 in [0, 1), exact in float32. Give each draw of
a step its own `offset` (PyTorch's Philox offset plays the same part) and the streams never
overlap: they differ in the counter's high half.
"""

import numpy as np

from tinygen.backend import get_array_module

M0, M1 = 0xD2511F53, 0xCD9E8D57        # round multipliers
W0, W1 = 0x9E3779B9, 0xBB67AE85        # Weyl key bumps: golden ratio, sqrt(3) - 1
MASK32 = 0xFFFFFFFF


def _check_u64(name, value):
    if not isinstance(value, (int, np.integer)) or not 0 <= int(value) < 1 << 64:
        raise ValueError(f"philox: {name} must be an integer in [0, 2^64), got {value!r}")
    return int(value)


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Ten Philox rounds on uint32 counter arrays c0..c3 (same shape) with key words k0, k1
    (Python ints). Returns the four uint32 output words, each an array of that shape."""
    xp = get_array_module(c0)
    for r in range(10):
        if r:
            k0, k1 = (k0 + W0) & MASK32, (k1 + W1) & MASK32
        p0 = c0.astype(xp.uint64) * xp.uint64(M0)            # 32 x 32 -> 64-bit products
        p1 = c2.astype(xp.uint64) * xp.uint64(M1)
        hi0, lo0 = (p0 >> xp.uint64(32)).astype(xp.uint32), p0.astype(xp.uint32)
        hi1, lo1 = (p1 >> xp.uint64(32)).astype(xp.uint32), p1.astype(xp.uint32)
        c0, c1, c2, c3 = hi1 ^ c1 ^ xp.uint32(k0), lo1, hi0 ^ c3 ^ xp.uint32(k1), lo0
    return c0, c1, c2, c3


def random_words(n, seed, offset=0, xp=np):
    """n uint32 words of the stream (seed, offset), in dropout.cu's numbering."""
    seed, offset = _check_u64("seed", seed), _check_u64("offset", offset)
    blocks = xp.arange((n + 3) // 4, dtype=xp.uint64)       # one Philox call per 4 words
    c0, c1 = blocks.astype(xp.uint32), (blocks >> xp.uint64(32)).astype(xp.uint32)
    c2 = xp.full(blocks.shape, offset & MASK32, dtype=xp.uint32)
    c3 = xp.full(blocks.shape, offset >> 32, dtype=xp.uint32)
    words = philox4x32_10(c0, c1, c2, c3, seed & MASK32, seed >> 32)
    return xp.stack(words, axis=1).reshape(-1)[:n]         # [blocks, 4] -> word i at i


def uniform(shape, seed, offset=0, xp=np):
    """float32 uniform numbers in [0, 1) of the given shape: 24 random bits each."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    n = int(np.prod(shape, dtype=np.int64))
    u24 = random_words(n, seed, offset, xp) >> xp.uint32(8)
    return (u24.astype(xp.float32) * xp.float32(2.0 ** -24)).reshape(shape)


def dropout_mask(shape, p, seed, offset=0, xp=np, dtype=np.float32):
    """Inverted-dropout mask: 1 / (1 - p) where uniform >= p (kept), 0 where dropped."""
    if not 0 <= p < 1:
        raise ValueError(f"dropout_mask: p must be in [0, 1), got {p}")
    keep = uniform(shape, seed, offset, xp) >= xp.float32(p)
    return keep.astype(dtype) * np.dtype(dtype).type(1.0 / (1.0 - p))

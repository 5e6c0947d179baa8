"""F.pad (PyTorch's): constant, reflect, replicate, circular, over any number of trailing
axes. Vectorised: one gather (advanced index, whose backward is an index_add) or one cat
per padded axis, never a loop over elements."""

import numpy as np

from tinygen.backend import module_for
from tinygen.tensor import cat

MODES = ("constant", "reflect", "replicate", "circular")


def _source_index(n, lo, hi, mode):
    """For each output position along an axis of size n padded by (lo, hi): the input
    position it copies."""
    idx = np.arange(-lo, n + hi)
    if mode == "replicate":
        return np.clip(idx, 0, n - 1)
    if mode == "circular":
        return idx % n
    period = 2 * (n - 1)                  # reflect: mirror about the edges, edges once
    m = idx % period if period else np.zeros_like(idx)
    return np.where(m >= n, period - m, m)


def pad(input, pad, mode="constant", value=0.0):
    """pad = (last_lo, last_hi, second_last_lo, second_last_hi, ...), as in PyTorch."""
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: needs an even number of sizes, at most 2 per axis of the "
                         f"input {input.shape}, got {pad}")
    if mode not in MODES:
        raise ValueError(f"pad: mode must be one of {MODES}, got {mode!r}")
    x = input
    for i in range(len(pad) // 2):
        dim, (lo, hi) = x.ndim - 1 - i, pad[2 * i: 2 * i + 2]
        n = x.shape[dim]
        lead = (slice(None),) * dim
        if mode == "constant":
            if lo < 0 or hi < 0:            # negative padding crops, as in PyTorch
                x = x[lead + (slice(max(-lo, 0), n - max(-hi, 0)),)]
                lo, hi = max(lo, 0), max(hi, 0)
            parts = []
            for size in (lo, None, hi):
                if size is None:
                    parts.append(x)
                elif size:
                    shape = x.shape[:dim] + (size,) + x.shape[dim + 1:]
                    fill = module_for(x.device).full(shape, value, dtype=x.dtype)
                    parts.append(type(x)(fill))
            x = cat(parts, axis=dim) if len(parts) > 1 else x
            continue
        if min(lo, hi) < 0:
            raise ValueError(f"pad: mode {mode!r} needs non-negative sizes, got {pad}")
        limit = n - 1 if mode == "reflect" else n if mode == "circular" else None
        if limit is not None and max(lo, hi) > limit:
            raise ValueError(f"pad: {mode} padding ({lo}, {hi}) of axis {dim} must be at most "
                             f"{limit} for its size {n}")
        idx = _source_index(n, lo, hi, mode)
        x = x[lead + (module_for(x.device).asarray(idx),)]
    return x

"""Solution to tour exercise 8 (try it yourself first)."""

import numpy as np


def top_p_filter(probs, top_p):
    desc = -np.sort(-probs, axis=-1)                                     # [B, V] descending
    # a token is kept unless the tokens more likely than it already reach top_p
    n_keep = ((np.cumsum(desc, axis=-1) - desc) < top_p).sum(axis=-1, keepdims=True)
    cutoff = np.take_along_axis(desc, n_keep - 1, axis=-1)               # [B, 1]
    kept = np.where(probs >= cutoff, probs, 0.0)
    return kept / kept.sum(axis=-1, keepdims=True)

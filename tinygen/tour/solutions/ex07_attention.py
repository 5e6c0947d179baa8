"""Solution to tour exercise 7 (try it yourself first)."""

import numpy as np

from tinygen.tensor import Tensor


def attention(q, k, v, is_causal=True):
    T, hs = q.shape[-2], q.shape[-1]
    att = (q @ k.transpose(-1, -2)) * (1.0 / np.sqrt(hs))      # [B, nh, T, T]
    if is_causal:
        future = np.triu(np.ones((T, T), dtype=bool), k=1)
        att = att.masked_fill(Tensor(future), float("-inf"))
    return att.softmax(-1) @ v                                 # [B, nh, T, hs]

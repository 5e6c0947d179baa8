"""Tour exercise 7 (stop 7, attention): attention that can also be non-causal.

softmax(q kᵀ / √hs + mask) v for q, k, v [B, nh, T, hs] (Vaswani et al. 2017, eq. 1).
GPT's mask hides the future; CLIP's image encoder (and BERT-style text encoders) let
every position see every other. This version always masks: make is_causal=False give
full attention. Check: python -m tinygen.tour check 7
"""

import numpy as np

from tinygen.tensor import Tensor


def attention(q, k, v, is_causal=True):
    T, hs = q.shape[-2], q.shape[-1]
    att = (q @ k.transpose(-1, -2)) * (1.0 / np.sqrt(hs))      # [B, nh, T, T]
    future = np.triu(np.ones((T, T), dtype=bool), k=1)         # True above the diagonal
    att = att.masked_fill(Tensor(future), float("-inf"))       # tour exercise 7
    return att.softmax(-1) @ v                                 # [B, nh, T, hs]

"""Solution to tour exercise 5 (try it yourself first)."""

import math

import numpy as np

from tinygen import nn


class Affine(nn.Module):
    def __init__(self, in_features, out_features):
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features)
        rng = np.random.default_rng()
        self.weight = nn.Parameter(rng.uniform(-bound, bound, (out_features, in_features))
                                   .astype(np.float32))
        self.bias = nn.Parameter(rng.uniform(-bound, bound, out_features).astype(np.float32))

    def forward(self, x):
        return x @ self.weight.T + self.bias                 # [N, in] @ [in, out] + [out]

"""The basic layers: thin Modules that hold parameters and call nn.functional."""

import math

import numpy as np

from tinygen.backend import module_for
from tinygen.nn import functional as F
from tinygen.nn import init
from tinygen.nn.module import Module, Parameter


def _empty(*shape, device="cpu"):
    return Parameter(module_for(device).zeros(shape, dtype=np.float32))


class Linear(Module):
    """y = x Wᵀ + b with W [out_features, in_features]; PyTorch's default init."""

    def __init__(self, in_features, out_features, bias=True, device="cpu"):
        self.in_features, self.out_features = in_features, out_features
        self.weight = init.kaiming_uniform_(_empty(out_features, in_features, device=device))
        self.bias = None
        if bias:
            bound = 1 / math.sqrt(in_features)
            self.bias = init.uniform_(_empty(out_features, device=device), -bound, bound)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    def __init__(self, num_embeddings, embedding_dim, device="cpu"):
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = init.normal_(_empty(num_embeddings, embedding_dim, device=device))

    def forward(self, idx):
        return F.embedding(idx, self.weight)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"


class LayerNorm(Module):
    def __init__(self, normalized_shape, eps=1e-5, bias=True, device="cpu"):
        self.normalized_shape = (normalized_shape,) if isinstance(
            normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.weight = init.ones_(_empty(*self.normalized_shape, device=device))
        self.bias = _empty(*self.normalized_shape, device=device) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"


class Dropout(Module):
    def __init__(self, p=0.5):
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class ReLU(Module):
    def forward(self, x):
        return x.relu()


class GELU(Module):
    def forward(self, x):
        return F.gelu(x)


class Tanh(Module):
    def forward(self, x):
        return x.tanh()


class Sigmoid(Module):
    def forward(self, x):
        return x.sigmoid()

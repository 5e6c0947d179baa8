"""The basic layers: thin Modules that hold parameters and call nn.functional (the
convolutions are in nn/conv.py)."""

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
        self.weight = init.kaiming_uniform_(_empty(out_features, in_features, device=device),
                                             a=math.sqrt(5))
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
    """Normalise over the trailing normalized_shape axes; elementwise_affine=False has no
    weight or bias, bias=False a weight only (PyTorch's arguments)."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 device="cpu"):
        self.normalized_shape = (normalized_shape,) if isinstance(
            normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.weight = self.bias = None
        if elementwise_affine:
            self.weight = init.ones_(_empty(*self.normalized_shape, device=device))
            self.bias = _empty(*self.normalized_shape, device=device) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.weight is not None}")


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


class Tanh(Module):
    def forward(self, x):
        return x.tanh()


class Sigmoid(Module):
    def forward(self, x):
        return x.sigmoid()


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01):
        self.negative_slope = negative_slope

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Flatten(Module):
    """[N, C, H, W] -> [N, C*H*W] (axes start_dim..end_dim become one), e.g. before a Linear."""

    def __init__(self, start_dim=1, end_dim=-1):
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)


class Unflatten(Module):
    """The inverse of Flatten: axis `dim` becomes `unflattened_size`, e.g. [N, C*H*W] ->
    [N, C, H, W] between a generator's Linear and its first ConvTranspose2d."""

    def __init__(self, dim, unflattened_size):
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x):
        dim = self.dim % x.ndim
        return x.reshape(x.shape[:dim] + self.unflattened_size + x.shape[dim + 1:])

    def extra_repr(self):
        return f"{self.dim}, {self.unflattened_size}"


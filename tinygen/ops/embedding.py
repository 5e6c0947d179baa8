"""Embedding lookup: rows of a table picked by integer ids."""

from tinygen.autograd import Function
from tinygen.backend import get_array_module, index_add


class EmbeddingFunction(Function):
    """weight[idx] for weight [V, C] and integer idx [...] -> [..., C].

    Replaces the composition `one_hot(idx) @ weight` without building the [..., V] one-hot
    matrix (memory). Backward scatter-adds rows: a token seen twice gets both gradients."""

    def forward(self, weight, idx):
        self.shape, self.dtype, self.idx = weight.shape, weight.dtype, idx
        return weight[idx]

    def backward(self, grad):
        gw = get_array_module(grad).zeros(self.shape, dtype=self.dtype)
        return index_add(gw, self.idx.reshape(-1), grad.reshape(-1, self.shape[1]))

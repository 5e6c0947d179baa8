"""tinygen.nn: Module, Parameter, layers, functional and init (PyTorch's names)."""

from tinygen.nn import functional, init  # noqa: F401
from tinygen.nn.layers import GELU, Dropout, Embedding, LayerNorm, Linear, ReLU, Sigmoid, Tanh  # noqa: F401
from tinygen.nn.module import Module, ModuleDict, ModuleList, Parameter, Sequential  # noqa: F401

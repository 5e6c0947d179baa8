"""tinygen.nn: Module, Parameter, layers, functional and init (PyTorch's names)."""

from tinygen.nn import functional, init  # noqa: F401
from tinygen.nn.batchnorm import BatchNorm1d, BatchNorm2d  # noqa: F401
from tinygen.nn.layers import (  # noqa: F401
    GELU,
    Conv2d,
    ConvTranspose2d,
    Dropout,
    Embedding,
    Flatten,
    LayerNorm,
    LeakyReLU,
    Linear,
    ReLU,
    Sigmoid,
    Tanh,
    Unflatten,
)
from tinygen.nn.module import Module, ModuleDict, ModuleList, Parameter, Sequential  # noqa: F401

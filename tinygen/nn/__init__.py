"""tinygen.nn: Module, Parameter, layers, functional and init (PyTorch's names)."""

from tinygen.nn import functional, init  # noqa: F401
from tinygen.nn.activation import (  # noqa: F401
    CELU,
    ELU,
    GELU,
    GLU,
    SELU,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    Identity,
    LogSigmoid,
    LogSoftmax,
    Mish,
    ReLU6,
    SiLU,
    Softmax,
    Softplus,
    Softsign,
)
from tinygen.nn.batchnorm import BatchNorm1d, BatchNorm2d  # noqa: F401
from tinygen.nn.conv import Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d  # noqa: F401
from tinygen.nn.layers import (  # noqa: F401
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
from tinygen.nn.loss import (  # noqa: F401
    BCELoss,
    BCEWithLogitsLoss,
    CosineSimilarity,
    CrossEntropyLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from tinygen.nn.module import Module, ModuleDict, ModuleList, Parameter, Sequential  # noqa: F401
from tinygen.nn.normalization import GroupNorm, InstanceNorm1d, InstanceNorm2d, RMSNorm  # noqa: F401
from tinygen.nn.pooling import (  # noqa: F401
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveMaxPool1d,
    AdaptiveMaxPool2d,
    AvgPool1d,
    AvgPool2d,
    MaxPool1d,
    MaxPool2d,
    PixelShuffle,
    PixelUnshuffle,
    Upsample,
    UpsamplingBilinear2d,
    UpsamplingNearest2d,
)

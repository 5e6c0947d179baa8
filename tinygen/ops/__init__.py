"""Every Function of tinygen: each class is one op with its forward and backward side by side.

One file per family, so that "where is the backward of X" is answered by a file name:

    elementwise.py    add, sub, mul, div, neg, pow, exp, log, sqrt, abs, clip, cast, where
    activation.py     relu, tanh, sigmoid, gelu, leaky_relu
    matmul.py         matmul
    linear.py         linear (x Wᵀ + b)
    reduce.py         sum, mean, max, softmax, log_softmax
    movement.py       reshape, permute, expand, getitem, cat, to-device
    normalization.py  layer_norm, batch_norm
    attention.py      scaled_dot_product_attention
    loss.py           cross_entropy
    embedding.py      embedding
    dropout.py        dropout
    conv.py           conv2d, conv_transpose2d (im2col / col2im)

Everything else in tinygen (Tensor methods, nn.functional) composes these, so a new
composite needs no backward of its own. Forward and backward take and return raw arrays.
A fused Function's docstring names the composition it replaces and why it is fused.
"""

from tinygen.ops.activation import (  # noqa: F401
    GELUFunction,
    LeakyReLUFunction,
    ReLUFunction,
    SigmoidFunction,
    TanhFunction,
)
from tinygen.ops.attention import ScaledDotProductAttention  # noqa: F401
from tinygen.ops.conv import Conv2dFunction, ConvTranspose2dFunction  # noqa: F401
from tinygen.ops.dropout import DropoutFunction  # noqa: F401
from tinygen.ops.elementwise import (  # noqa: F401
    Abs,
    Add,
    Cast,
    Clip,
    Div,
    Exp,
    Log,
    Mul,
    Neg,
    Pow,
    Sqrt,
    Sub,
    Where,
)
from tinygen.ops.embedding import EmbeddingFunction  # noqa: F401
from tinygen.ops.linear import LinearFunction  # noqa: F401
from tinygen.ops.loss import CrossEntropy  # noqa: F401
from tinygen.ops.matmul import MatMul  # noqa: F401
from tinygen.ops.movement import Cat, Expand, GetItem, Permute, Reshape, ToDevice  # noqa: F401
from tinygen.ops.normalization import BatchNormFunction, LayerNormFunction  # noqa: F401
from tinygen.ops.reduce import LogSoftmax, Max, Mean, Softmax, Sum  # noqa: F401

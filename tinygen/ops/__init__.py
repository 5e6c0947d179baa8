"""Every Function of tinygen: each class is one op with its forward and backward side by side.

One file per family, so that "where is the backward of X" is answered by a file name:

    elementwise.py    add, sub, mul, div, neg, pow, exp, log, sqrt, abs, clip, cast, where,
                      maximum/minimum, sin, cos, asin, acos, atan, atan2, log1p, expm1,
                      floor, ceil, round, trunc, sign, erf
    activation.py     relu, tanh, sigmoid, gelu, swiglu, leaky_relu
    matmul.py         matmul
    linalg.py         det, inv, solve, cholesky, qr, eigh, svd (tinygen.linalg)
    linear.py         linear (x Wᵀ + b)
    reduce.py         sum, mean, max, min, prod, softmax, log_softmax
    scan.py           cumsum, cumprod
    indexing.py       gather, scatter, scatter_add, scatter_reduce (amax/amin, prod)
    einsum.py         einsum
    movement.py       reshape, permute, expand, getitem, cat, to-device
    normalization.py  layer_norm, batch_norm
    attention.py      scaled_dot_product_attention
    loss.py           cross_entropy
    embedding.py      embedding
    dropout.py        dropout
    conv.py           conv2d, conv_transpose2d (groups, dilation; conv1d as a height-1 conv2d)
    im2col.py         im2col (one gather) and col2im, the columns conv.py multiplies
    pooling.py        max / average / adaptive pooling, resampling (window gathers);
                      resize.py builds interpolation's windows

Everything else in tinygen (Tensor methods, nn.functional) composes these, so a new
composite needs no backward of its own. Forward and backward take and return raw arrays.
A fused Function's docstring names the composition it replaces and why it is fused.
"""

from tinygen.ops.activation import (  # noqa: F401
    GELUFunction,
    LeakyReLUFunction,
    ReLUFunction,
    SigmoidFunction,
    SwiGLUFunction,
    TanhFunction,
)
from tinygen.ops.attention import PackedQKVAttention, ScaledDotProductAttention  # noqa: F401
from tinygen.ops.conv import Conv2dFunction, ConvTranspose2dFunction  # noqa: F401
from tinygen.ops.dropout import DropoutFunction  # noqa: F401
from tinygen.ops.einsum import Einsum  # noqa: F401
from tinygen.ops.elementwise import (  # noqa: F401
    Abs,
    Acos,
    Add,
    Asin,
    Atan,
    Atan2,
    Cast,
    Ceil,
    Clip,
    Cos,
    Div,
    Erf,
    Exp,
    Expm1,
    Floor,
    Log,
    Log1p,
    Maximum,
    Minimum,
    Mul,
    Neg,
    Pow,
    Round,
    Sign,
    Sin,
    Sqrt,
    Sub,
    Trunc,
    Where,
)
from tinygen.ops.embedding import EmbeddingFunction  # noqa: F401
from tinygen.ops.indexing import (  # noqa: F401
    Gather,
    Scatter,
    ScatterAdd,
    ScatterMax,
    ScatterProd,
)
from tinygen.ops.linalg import QR, SVD, Cholesky, Det, Eigh, Inv, Solve  # noqa: F401
from tinygen.ops.linear import LinearFunction  # noqa: F401
from tinygen.ops.loss import CrossEntropy  # noqa: F401
from tinygen.ops.matmul import MatMul  # noqa: F401
from tinygen.ops.movement import Cat, Expand, GetItem, Permute, Reshape, ToDevice  # noqa: F401
from tinygen.ops.normalization import BatchNormFunction, LayerNormFunction  # noqa: F401
from tinygen.ops.pooling import MaxPoolFunction, WindowSumFunction  # noqa: F401
from tinygen.ops.reduce import LogSoftmax, Max, Mean, Min, Prod, Softmax, Sum  # noqa: F401
from tinygen.ops.scan import Cumprod, Cumsum  # noqa: F401

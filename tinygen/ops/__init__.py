"""Primitive Functions: each class is one op with its forward and backward side by side.

Everything else in tinygen (Tensor methods, nn.functional) composes these, so a new
composite needs no backward of its own. Forward and backward take and return raw arrays.
"""

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
    Relu,
    Round,
    Sigmoid,
    Sign,
    Sin,
    Sqrt,
    Sub,
    Tanh,
    Trunc,
    Where,
)
from tinygen.ops.indexing import Gather, Scatter, ScatterAdd, ScatterMax  # noqa: F401
from tinygen.ops.matmul import MatMul  # noqa: F401
from tinygen.ops.movement import Cat, Expand, GetItem, Permute, Reshape, ToDevice  # noqa: F401
from tinygen.ops.reduce import LogSoftmax, Max, Mean, Min, Prod, Softmax, Sum  # noqa: F401
from tinygen.ops.scan import Cumprod, Cumsum  # noqa: F401

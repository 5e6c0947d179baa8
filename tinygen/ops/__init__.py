"""Primitive Functions: each class is one op with its forward and backward side by side.

Everything else in tinygen (Tensor methods, nn.functional) composes these, so a new
composite needs no backward of its own. Forward and backward take and return raw arrays.
"""

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
    Relu,
    Sigmoid,
    Sqrt,
    Sub,
    Tanh,
    Where,
)
from tinygen.ops.matmul import MatMul  # noqa: F401
from tinygen.ops.movement import Cat, Expand, GetItem, Permute, Reshape, ToDevice  # noqa: F401
from tinygen.ops.reduce import LogSoftmax, Max, Mean, Softmax, Sum  # noqa: F401

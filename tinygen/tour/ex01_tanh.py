"""Tour exercise 1 (stop 1, Tensor and Function): write the backward of tanh.

forward is done: it keeps its output on self. d tanh(x)/dx = 1 - tanh(x)², so backward
needs nothing but that saved output. Return one gradient, shaped like the input.
Check: python -m tinygen.tour check 1
"""

from tinygen.autograd import Function
from tinygen.backend import get_array_module


class Tanh(Function):
    def forward(self, x):
        self.out = get_array_module(x).tanh(x)
        return self.out

    def backward(self, grad):
        raise NotImplementedError("tour exercise 1: return grad * dtanh/dx, from self.out")

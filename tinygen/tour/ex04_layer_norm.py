"""Tour exercise 4 (stop 4, a fused op): the backward of layer norm (no weight, no bias).

forward keeps x̂ = (x - mean) / std and rstd = 1 / std, both over the last axis. With
g the incoming gradient and means over the last axis (Ba et al. 2016; see
tinygen/ops/normalization.py):  dx = rstd · (g - mean(g) - x̂ · mean(g · x̂)).
Check: python -m tinygen.tour check 4
"""

from tinygen.autograd import Function
from tinygen.backend import get_array_module


class LayerNorm(Function):
    def forward(self, x, eps=1e-5):
        xp = get_array_module(x)
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        self.rstd = 1.0 / xp.sqrt(var + eps)
        self.xhat = (x - mean) * self.rstd
        return self.xhat

    def backward(self, grad):
        raise NotImplementedError("tour exercise 4: dx from grad, self.xhat and self.rstd")

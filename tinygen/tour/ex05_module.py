"""Tour exercise 5 (stop 5, Module and parameters): a Linear layer from Parameters.

Module finds parameters by walking its attributes (tinygen/nn/module.py), so assigning an
nn.Parameter to self is all the registration there is. Give Affine a `weight`
[out_features, in_features] and a `bias` [out_features], both uniform in ±1/√in_features
(PyTorch's default), and make forward compute x Wᵀ + b with Tensor operators.
Check: python -m tinygen.tour check 5
"""

from tinygen import nn


class Affine(nn.Module):
    def __init__(self, in_features, out_features):
        self.in_features, self.out_features = in_features, out_features
        # tour exercise 5: self.weight = nn.Parameter(...), self.bias = nn.Parameter(...)

    def forward(self, x):
        raise NotImplementedError("tour exercise 5: x @ W.T + b")

"""Normalisation Modules beyond LayerNorm / BatchNorm: RMSNorm, GroupNorm, InstanceNorm
(PyTorch's names, arguments and default init: weight 1, bias 0)."""

import numpy as np

from tinygen.backend import module_for
from tinygen.nn import functional as F
from tinygen.nn.module import Module, Parameter


def _param(shape, value, device):
    return Parameter(module_for(device).full(shape, value, dtype=np.float32))


class RMSNorm(Module):
    """x / √(mean(x²) + eps) · weight over the trailing normalized_shape axes; eps=None is
    the dtype's machine epsilon (PyTorch's default)."""

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, device="cpu"):
        self.normalized_shape = (normalized_shape,) if isinstance(
            normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.weight = _param(self.normalized_shape, 1.0, device) if elementwise_affine else None

    def forward(self, x):
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, " \
               f"elementwise_affine={self.weight is not None}"


class GroupNorm(Module):
    """[N, C, *] normalised in num_groups groups of channels (Wu & He 2018)."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device="cpu"):
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels {num_channels} must be divisible by "
                             f"num_groups {num_groups}")
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
        self.weight = _param((num_channels,), 1.0, device) if affine else None
        self.bias = _param((num_channels,), 0.0, device) if affine else None

    def forward(self, x):
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, " \
               f"affine={self.weight is not None}"


class _InstanceNorm(Module):
    """Each sample's channel normalised over its positions. PyTorch's defaults: affine=False,
    no running statistics (track_running_stats=True is not implemented)."""

    spatial = None

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False,
                 track_running_stats=False, device="cpu"):
        if track_running_stats:
            raise NotImplementedError(f"{type(self).__name__}: track_running_stats=True is "
                                      f"not implemented (use BatchNorm for running statistics)")
        self.num_features, self.eps = num_features, eps
        self.weight = _param((num_features,), 1.0, device) if affine else None
        self.bias = _param((num_features,), 0.0, device) if affine else None

    def forward(self, x):
        if x.ndim != self.spatial + 2 or x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: expected an input [N, "
                             f"{self.num_features}, {self.spatial} spatial axes], got {x.shape}")
        return F.instance_norm(x, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, affine={self.weight is not None}"


class InstanceNorm1d(_InstanceNorm):
    spatial = 1


class InstanceNorm2d(_InstanceNorm):
    spatial = 2

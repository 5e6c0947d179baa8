"""Normalisation Modules beyond LayerNorm / BatchNorm: RMSNorm, GroupNorm, InstanceNorm
(PyTorch's names, arguments and default init: weight 1, bias 0; InstanceNorm's optional
running statistics as PyTorch keeps them)."""

import math

import numpy as np

from tinygen.backend import module_for
from tinygen.nn import functional as F
from tinygen.nn.module import Module, Parameter
from tinygen.tensor import Tensor


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
    """Each sample's channel normalised over its positions (Ulyanov et al. 2016). PyTorch's
    defaults: affine=False, track_running_stats=False.

    With track_running_stats=True the layer also keeps running_mean and running_var
    buffers, as PyTorch's does: each training step moves them by `momentum` towards the
    batch average of the per-instance means and unbiased variances (momentum=None means 0
    there: no update), and eval mode normalises with them instead of each instance's own
    statistics. num_batches_tracked is kept for PyTorch's state_dict layout (PyTorch's
    InstanceNorm never increments it either)."""

    spatial = None

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False,
                 track_running_stats=False, device="cpu"):
        xp = module_for(device)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = _param((num_features,), 1.0, device) if affine else None
        self.bias = _param((num_features,), 0.0, device) if affine else None
        stats = (xp.zeros(num_features, dtype=np.float32),
                 xp.ones(num_features, dtype=np.float32), xp.zeros((), dtype=np.int64))
        for name, value in zip(("running_mean", "running_var", "num_batches_tracked"), stats):
            self.register_buffer(name, Tensor(value) if track_running_stats else None)

    def forward(self, x):
        name = type(self).__name__
        if x.ndim not in (self.spatial + 1, self.spatial + 2) or x.shape[-self.spatial - 1] \
                != self.num_features:
            raise ValueError(f"{name}: expected an input [N, {self.num_features}, "
                             f"{self.spatial} spatial axes] (or without N), got {x.shape}")
        if x.ndim == self.spatial + 1:                     # unbatched [C, *spatial]
            return self.forward(x.unsqueeze(0)).squeeze(0)
        use_input_stats = self.training or not self.track_running_stats
        if use_input_stats and math.prod(x.shape[2:]) == 1:
            raise ValueError(f"{name}: expected more than 1 spatial element when training, "
                             f"got input of size {x.shape}")
        if not use_input_stats:                            # eval with running statistics
            bshape = (1, self.num_features) + (1,) * self.spatial
            mean = self.running_mean.reshape(bshape).to(dtype=x.dtype)
            var = self.running_var.reshape(bshape).to(dtype=x.dtype)
            out = (x - mean) * (var + self.eps).rsqrt()
            out = out if self.weight is None else out * self.weight.reshape(bshape)
            return out if self.bias is None else out + self.bias.reshape(bshape)
        if self.training and self.track_running_stats:
            self._update_running_stats(x.data)
        return F.instance_norm(x, self.weight, self.bias, self.eps)

    def _update_running_stats(self, data):
        """running = (1 - momentum) · running + momentum · batch mean of each instance's
        mean and unbiased variance over its positions (no graph, no host sync)."""
        m = 0.0 if self.momentum is None else self.momentum
        d = data.reshape(data.shape[0], data.shape[1], -1)              # [N, C, L]
        for buf, stat in ((self.running_mean, d.mean(-1)), (self.running_var, d.var(-1, ddof=1))):
            buf.data[...] = (1 - m) * buf.data + m * stat.mean(0).astype(buf.dtype)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class InstanceNorm1d(_InstanceNorm):
    spatial = 1


class InstanceNorm2d(_InstanceNorm):
    spatial = 2

"""Normalisations of tinygen.nn.functional beyond LayerNorm / BatchNorm (PyTorch's names).

Compositions of Tensor ops (mean, var, rsqrt, each with its own backward): the forward is
the paper's formula and the gradient follows from it, so no derivative is hand-written.
"""

import numpy as np


def _shape(normalized_shape):
    return (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)


def rms_norm(x, normalized_shape, weight=None, eps=None):
    """x / √(mean(x²) + eps) · weight over the trailing normalized_shape axes (Zhang &
    Sennrich 2019). eps=None takes the dtype's machine epsilon, as PyTorch does."""
    shape = _shape(normalized_shape)
    if tuple(x.shape[x.ndim - len(shape):]) != shape:
        raise ValueError(f"rms_norm: normalized_shape {shape} must be the trailing axes of the "
                         f"input, whose shape is {x.shape}")
    if weight is not None and tuple(weight.shape) != shape:
        raise ValueError(f"rms_norm: weight must have shape {shape}, got {tuple(weight.shape)}")
    if eps is None:
        eps = float(np.finfo(x.dtype).eps)
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    out = x * ((x * x).mean(axes, keepdims=True) + eps).rsqrt()
    return out if weight is None else out * weight


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    """Group normalisation (Wu & He 2018): x [N, C, *] split into num_groups groups of C /
    num_groups channels, each normalised by its own mean and (biased) variance over its
    channels and spatial positions; then the per-channel affine weight [C], bias [C]."""
    if x.ndim < 2:
        raise ValueError(f"group_norm: expected an input [N, C, ...], got shape {x.shape}")
    N, C = x.shape[:2]
    if C % num_groups:
        raise ValueError(f"group_norm: {C} channels do not split into {num_groups} groups")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (C,):
            raise ValueError(f"group_norm: {name} must have shape ({C},), got {tuple(t.shape)}")
    g = x.reshape(N, num_groups, -1)                                   # [N, G, C/G · *]
    mean = g.mean(-1, keepdims=True)
    var = g.var(-1, keepdims=True, correction=0)
    out = ((g - mean) * (var + eps).rsqrt()).reshape(x.shape)
    bshape = (1, C) + (1,) * (x.ndim - 2)                              # [C] over [N, C, *]
    out = out if weight is None else out * weight.reshape(bshape)
    return out if bias is None else out + bias.reshape(bshape)


def instance_norm(x, weight=None, bias=None, eps=1e-5):
    """Instance normalisation (Ulyanov et al. 2016): each sample's channel normalised over
    its spatial positions, i.e. group_norm with one group per channel. (No running
    statistics: PyTorch's InstanceNorm default track_running_stats=False.)"""
    if x.ndim < 3:
        raise ValueError(f"instance_norm: expected an input [N, C, *spatial], got {x.shape}")
    return group_norm(x, x.shape[1], weight, bias, eps)

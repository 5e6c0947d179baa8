"""Batch normalisation (Ioffe & Szegedy 2015): the fused BatchNorm Function, `batch_norm`
(re-exported as F.batch_norm) and the BatchNorm1d / BatchNorm2d layers.

In training each channel is normalised with the mean and variance of the current batch,
taken over N and every axis after C, then scaled and shifted:
    y = (x - mean) / √(var + eps) · weight + bias.
The layers also keep running averages of those statistics, which eval mode uses instead,
so that a trained model's answer for one example does not depend on the rest of its batch.
Shapes: N batch, C channels, L everything after C flattened (H*W for images, 1 for [N, C]).
"""

import numpy as np

from tinygen.autograd import Function
from tinygen.backend import device_of, get_array_module, module_for
from tinygen.nn.fused import sum_last, sum_leading
from tinygen.nn.module import Module, Parameter
from tinygen.tensor import Tensor


def channel_sum(x3):
    """[N, C, L] summed over N and L -> [C], as BLAS matrix-vector products. Conv layers
    hand out images batch-last in memory ([C, L, N], see conv.py): then that is one
    [C, L*N] matrix, summed in one pass; otherwise per image first, then over the batch."""
    N, C, L = x3.shape
    rows = x3.transpose(1, 2, 0)                                  # [C, L, N]
    if rows.flags.c_contiguous:
        return sum_last(rows.reshape(C, L * N))[:, 0]
    per_image = sum_last(x3.reshape(N * C, L)).reshape(N, C) if L > 1 else x3.reshape(N, C)
    return sum_leading(per_image)


class BatchNorm(Function):
    """Per-channel normalisation of x [N, C, ...] with batch statistics (training=True) or
    the given running ones (training=False), then weight [C] and bias [C].

    Fused for speed and memory: one node that keeps x̂ and 1/std for backward, where the
    composition would be about ten nodes each holding an array the size of x. In training
    the running statistics are updated in place, as PyTorch's kernel does: the batch mean,
    and the UNBIASED batch variance (n / (n - 1) times the one used to normalise).
    """

    def forward(self, x, weight=None, bias=None, training=True, running_mean=None,
                running_var=None, momentum=0.1, eps=1e-5):
        xp = get_array_module(x)
        N, C = x.shape[:2]
        x3 = x.reshape(N, C, -1)                                  # [N, C, L]
        n = x3.shape[0] * x3.shape[2]                             # values per channel
        if training:
            mean = channel_sum(x3) * (1.0 / n)                    # [C]
            xhat = x3 - mean[:, None]
            var = channel_sum(xhat * xhat) * (1.0 / n)            # biased: normalises
            if running_mean is not None:
                running_mean *= 1.0 - momentum
                running_mean += momentum * mean
                running_var *= 1.0 - momentum
                running_var += (momentum * n / (n - 1)) * var     # unbiased: estimates
        else:
            mean, var = running_mean.astype(x.dtype), running_var.astype(x.dtype)
            xhat = x3 - mean[:, None]
        rstd = var + eps
        rstd = xp.sqrt(rstd, out=rstd)
        rstd = xp.reciprocal(rstd, out=rstd)                      # [C], 1/√(var + eps)
        xhat *= rstd[:, None]
        self.xhat, self.rstd, self.weight, self.training = xhat, rstd, weight, training
        self.has_bias = bias is not None
        out = xhat * weight[:, None] if weight is not None else xhat.copy()
        if bias is not None:
            out += bias[:, None]
        return out.reshape(x.shape)

    def backward(self, grad):
        xhat, w = self.xhat, self.weight
        g = grad.reshape(xhat.shape)                              # [N, C, L]
        gb = channel_sum(g)                                       # Σ g        [C]
        gw = channel_sum(g * xhat)                                # Σ g x̂      [C]
        scale = self.rstd if w is None else w * self.rstd         # ∂y/∂x̂ · ∂x̂/∂x, per channel
        if self.training:
            # the mean and variance depend on x too (Ioffe & Szegedy, section 3):
            # dx = w/std · (g - mean(g) - x̂ · mean(g x̂)), means over N and L
            inv_n = 1.0 / (g.shape[0] * g.shape[2])
            gx = xhat * (gw * inv_n)[:, None]
            gx += (gb * inv_n)[:, None]
            gx = g - gx
            gx *= scale[:, None]
        else:  # fixed statistics: a per-channel affine map
            gx = g * scale[:, None]
        gx = gx.reshape(grad.shape)
        if w is None:
            return gx
        return (gx, gw, gb) if self.has_bias else (gx, gw)


def _array(t):
    return t.data if isinstance(t, Tensor) else t


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalisation of x [N, C, ...] over N and the axes after C (PyTorch's
    F.batch_norm). training=True uses the batch's statistics and, when running_mean and
    running_var are given, updates them in place: r = (1 - momentum) r + momentum · batch
    stat; training=False uses running_mean / running_var. weight, bias: [C] or None."""
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected an input [N, C, ...], got shape {x.shape}")
    C = x.shape[1]
    for name, t in (("weight", weight), ("bias", bias), ("running_mean", running_mean),
                    ("running_var", running_var)):
        if t is not None and device_of(_array(t)) != x.device:
            raise RuntimeError(f"batch_norm: {name} is on {device_of(_array(t))}, the input "
                               f"on {x.device}; move the module with .to({x.device!r})")
        if t is not None and tuple(t.shape) != (C,):
            raise ValueError(f"batch_norm: {name} must have shape ({C},) for the input "
                             f"{x.shape}, got {tuple(t.shape)}")
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm: give both running_mean and running_var, or neither")
    if not training and running_mean is None:
        raise ValueError("batch_norm: training=False needs running_mean and running_var")
    if training and x.data.size <= C:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when "
                         f"training, got input {x.shape}")
    if weight is None and bias is not None:  # the fused Function takes a bias only with a weight
        weight = Tensor(get_array_module(x.data).ones(C, dtype=x.dtype))
    params = [t for t in (weight, bias) if t is not None]
    return BatchNorm.apply(x, *params, training=training, running_mean=_array(running_mean),
                           running_var=_array(running_var), momentum=momentum, eps=eps)


class _BatchNorm(Module):
    """Shared by BatchNorm1d and BatchNorm2d, which differ only in the input ranks they take.

    weight and bias are trained (affine=True); running_mean, running_var and
    num_batches_tracked are buffers: saved in state_dict, moved by .to(), never trained.
    momentum=None averages every batch so far equally (a cumulative mean), as in PyTorch.
    track_running_stats=False keeps no running statistics and uses the batch's in eval too.
    """

    input_ranks = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device="cpu"):
        xp = module_for(device)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = Parameter(xp.ones(num_features, dtype=np.float32)) if affine else None
        self.bias = Parameter(xp.zeros(num_features, dtype=np.float32)) if affine else None
        stats = (xp.zeros(num_features, dtype=np.float32),
                 xp.ones(num_features, dtype=np.float32), xp.zeros((), dtype=np.int64))
        for name, value in zip(("running_mean", "running_var", "num_batches_tracked"), stats):
            self.register_buffer(name, Tensor(value) if track_running_stats else None)

    def forward(self, x):
        if x.ndim not in self.input_ranks or x.shape[1] != self.num_features:
            ranks = " or ".join(f"{n}-D" for n in self.input_ranks)
            raise ValueError(f"{type(self).__name__}({self.num_features}): expected a {ranks} "
                             f"input with {self.num_features} channels on axis 1, "
                             f"got shape {x.shape}")
        momentum = self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if momentum is None:
                momentum = 1.0 / int(self.num_batches_tracked.item())
        use_batch_stats = self.training or self.running_mean is None
        return batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                          training=use_batch_stats, momentum=momentum, eps=self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm of features [N, C] or sequences [N, C, L] (statistics over N and L)."""

    input_ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm of images [N, C, H, W] (statistics over N, H and W)."""

    input_ranks = (4,)

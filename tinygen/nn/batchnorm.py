"""Batch normalisation layers (Ioffe & Szegedy 2015): BatchNorm1d and BatchNorm2d.
(F.batch_norm is in nn/functional.py, its Function in ops/normalization.py.)

In training each channel is normalised with the mean and variance of the current batch,
taken over N and every axis after C, then scaled and shifted:
    y = (x - mean) / √(var + eps) · weight + bias.
The layers also keep running averages of those statistics, which eval mode uses instead,
so that a trained model's answer for one example does not depend on the rest of its batch.
Shapes: N batch, C channels, L everything after C flattened (H*W for images, 1 for [N, C]).
"""

import numpy as np

from tinygen.backend import module_for
from tinygen.nn.functional import batch_norm
from tinygen.nn.module import Module, Parameter
from tinygen.tensor import Tensor


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

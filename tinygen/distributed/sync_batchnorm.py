"""SyncBatchNorm: batch norm whose statistics are those of the global batch, all ranks
together (torch.nn.SyncBatchNorm; Peng et al. 2018, "MegDet", section 4.2).

Under data parallelism each rank sees B/N rows. Plain BatchNorm would normalise with the
mean and variance of those B/N rows, so N ranks would train another model than one process
on B rows, and each rank would keep its own running statistics. SyncBatchNorm all-reduces
the per-channel sums instead, so every rank normalises with the statistics of all B rows:
    forward:  Σ x over ranks -> mean;  Σ (x - mean)² over ranks -> var (two all-reduces,
              the same two-pass formula as ops/normalization.BatchNormFunction)
    backward: Σ g and Σ g·x̂ over ranks -> dx = w/std · (g - mean(g) - x̂ · mean(g x̂))
The weight and bias gradients stay this rank's sums; DDP averages them with the rest.
In a group of one (or in eval mode) it is exactly BatchNorm.

    G = dist.SyncBatchNorm.convert_sync_batchnorm(G)   # before DistributedDataParallel(G)
"""

from tinygen.autograd import Function
from tinygen.backend import channel_sums, get_array_module
from tinygen.distributed.collectives import ReduceOp, all_reduce
from tinygen.distributed.process_group import group
from tinygen.nn.batchnorm import _BatchNorm


def _sum_over_ranks(a):
    return all_reduce(get_array_module(a).ascontiguousarray(a), ReduceOp.SUM, check=False)


class SyncBatchNormFunction(Function):
    """BatchNormFunction in training mode with every sum taken over all ranks.
    x [N, C, ...] (this rank's rows), weight/bias [C] -> y like x."""

    def forward(self, x, weight, bias, running_mean=None, running_var=None, momentum=0.1,
                eps=1e-5):
        xp = get_array_module(x)
        N, C = x.shape[:2]
        x3 = x.reshape(N, C, -1)                                         # [N, C, L]
        counts = xp.asarray([float(N * x3.shape[2])], dtype=xp.float64)
        n = float(_sum_over_ranks(counts)[0])                            # values per channel
        mean = _sum_over_ranks(channel_sums(x3)) * (1.0 / n)             # [C], global
        xhat = x3 - mean[:, None]
        var = _sum_over_ranks(channel_sums(xhat * xhat)) * (1.0 / n)     # biased: normalises
        if running_mean is not None:
            running_mean *= 1.0 - momentum
            running_mean += momentum * mean
            running_var *= 1.0 - momentum
            running_var += (momentum * n / max(n - 1, 1.0)) * var        # unbiased: estimates
        rstd = xp.reciprocal(xp.sqrt(var + eps))                         # [C]
        xhat *= rstd[:, None]
        self.xhat, self.rstd, self.weight, self.n = xhat, rstd, weight, n
        out = xhat * weight[:, None]
        out += bias[:, None]
        return out.reshape(x.shape)

    def backward(self, grad):
        xhat, w = self.xhat, self.weight
        g = grad.reshape(xhat.shape)                                     # [N, C, L]
        gb = channel_sums(g)                                             # this rank's Σ g
        gw = channel_sums(g * xhat)                                      # this rank's Σ g x̂
        xp = get_array_module(g)
        both = _sum_over_ranks(xp.concatenate([gb, gw]))                 # [2C], all ranks
        C = gb.shape[0]
        inv_n = 1.0 / self.n
        gx = xhat * (both[C:] * inv_n)[:, None]
        gx += (both[:C] * inv_n)[:, None]
        gx = g - gx
        gx *= (w * self.rstd)[:, None]
        return gx.reshape(grad.shape), gw, gb


class SyncBatchNorm(_BatchNorm):
    """BatchNorm1d / BatchNorm2d with global-batch statistics in training (any input rank
    2-4, as torch.nn.SyncBatchNorm). Needs affine=True and running statistics, as the
    layers it replaces in the models here have."""

    input_ranks = (2, 3, 4)

    def forward(self, x):
        if not self.training or group().world_size == 1:
            return super().forward(x)
        if not (self.affine and self.track_running_stats):
            raise ValueError("SyncBatchNorm: needs affine=True and track_running_stats=True")
        if x.ndim not in self.input_ranks or x.shape[1] != self.num_features:
            raise ValueError(f"SyncBatchNorm({self.num_features}): expected a 2-D to 4-D "
                             f"input with {self.num_features} channels on axis 1, "
                             f"got shape {x.shape}")
        self.num_batches_tracked.data += 1
        momentum = self.momentum
        if momentum is None:
            momentum = 1.0 / int(self.num_batches_tracked.item())
        return SyncBatchNormFunction.apply(x, self.weight, self.bias,
                                           running_mean=self.running_mean.data,
                                           running_var=self.running_var.data,
                                           momentum=momentum, eps=self.eps)

    @classmethod
    def convert_sync_batchnorm(cls, module):
        """Replace every BatchNorm1d/2d inside `module` by a SyncBatchNorm holding the same
        parameters and buffers (in place; returns the module, or the new layer if `module`
        is itself a batch norm), as torch.nn.SyncBatchNorm.convert_sync_batchnorm."""
        if isinstance(module, _BatchNorm) and not isinstance(module, cls):
            converted = cls.__new__(cls)
            converted.__dict__.update(module.__dict__)
            return converted
        for name, child in list(module.named_children()):
            setattr(module, name, cls.convert_sync_batchnorm(child))
        return module


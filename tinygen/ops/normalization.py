"""Normalisation layers' Functions: layer norm (Ba, Kiros & Hinton 2016) over the last
axis, batch norm (Ioffe & Szegedy 2015) per channel over the batch.

Both compute y = (x - mean) / √(var + eps) · weight + bias and keep 1/std for backward,
with the normalised x̂ (layer norm) or x - mean (batch norm). Shapes: N batch, C channels,
L everything after C flattened.
"""

from tinygen.autograd import Function
from tinygen.backend import channel_dots, channel_sums, column_sums, get_array_module, row_sums
from tinygen.blocked import in_row_blocks, row_dots_in_block, row_sums_in_block
from tinygen.ops import kernel_calls, kernels


class LayerNormFunction(Function):
    """(x - mean) / sqrt(var + eps) * w + b over the last axis of x [..., C].

    Replaces the composition `(x - x.mean(-1, keepdims=True)) / (x.var(-1, keepdims=True)
    + eps).sqrt() * w + b` (about ten nodes). Fused for speed and memory: backward reuses
    x̂ and 1/std instead of re-deriving them op by op, and both passes run a block of rows
    at a time (tinygen.blocked), so their temporaries stay in cache."""

    def forward(self, x, weight=None, bias=None, eps=1e-5):
        self.has_bias, self.weight = bias is not None, weight
        if kernels.use("layer_norm", x, weight, bias):   # normalization.cu, when switched on
            out, self.mean, self.rstd = kernel_calls.layer_norm_forward_cuda(x, weight, bias, eps)
            self.x, self.xhat = x, None                   # backward takes x, mean, rstd
            return out
        xp = get_array_module(x)
        C = x.shape[-1]
        x2 = x.reshape(-1, C)                                     # [N, C]
        out, xhat = xp.empty_like(x2), xp.empty_like(x2)
        rstd = xp.empty((x2.shape[0], 1), x.dtype)                # [N, 1]
        in_row_blocks(self._forward, x2, out, xhat, rstd, shared=(weight, bias, eps))
        self.xhat, self.rstd = xhat, rstd
        return out.reshape(x.shape)

    @staticmethod
    def _forward(x, out, xhat, rstd, weight, bias, eps):
        xp, inv_c = get_array_module(x), 1.0 / x.shape[-1]
        xp.subtract(x, row_sums_in_block(x) * inv_c, out=xhat)    # x - mean
        var = row_dots_in_block(xhat, xhat)
        var *= inv_c
        var += eps
        xp.sqrt(var, out=var)
        xp.reciprocal(var, out=rstd)                              # 1 / √(var + eps)
        xhat *= rstd
        if weight is None:
            out[...] = xhat
            return
        xp.multiply(xhat, weight, out=out)
        if bias is not None:
            out += bias

    def backward(self, grad):
        # dx = rstd (gx̂ - mean(gx̂) - x̂ mean(gx̂ x̂)), gx̂ = g w, means over each row. The two
        # row means are products with w: (g @ w) / C and ((g x̂) @ w) / C, each one gemv
        # over all rows, and g x̂ is the array whose column sums are gw: three passes over
        # [N, C] fewer than forming g w first and summing its rows (docs/cpu_speed.md).
        w = self.weight
        if self.xhat is None:                                     # the kernel's forward ran
            gx, gw, gb = kernel_calls.layer_norm_backward(grad, self.x, self.mean, self.rstd,
                                                          w, self.has_bias)
            return gx if w is None else (gx, gw, gb) if self.has_bias else (gx, gw)
        xhat = self.xhat
        g = grad.reshape(xhat.shape)                              # [N, C]
        g_xhat = g * xhat
        gw = column_sums(g_xhat) if w is not None and self.needs_input_grad[1] else None
        gb = column_sums(g) if self.has_bias and self.needs_input_grad[2] else None
        inv_c = 1.0 / g.shape[-1]
        mean_gxhat = _row_dots(g, w) * inv_c                      # [N, 1]
        mean_gxhat_xhat = _row_dots(g_xhat, w) * inv_c            # [N, 1]
        del g_xhat
        gx = get_array_module(g).empty_like(xhat)
        in_row_blocks(self._backward, g, xhat, self.rstd, mean_gxhat, mean_gxhat_xhat, gx,
                      shared=(w,))
        gx = gx.reshape(grad.shape)
        if w is None:
            return gx
        return (gx, gw, gb) if self.has_bias else (gx, gw)

    @staticmethod
    def _backward(g, xhat, rstd, mean_gxhat, mean_gxhat_xhat, gx, weight):
        xp = get_array_module(g)
        if weight is None:
            gx[...] = g
        else:
            xp.multiply(g, weight, out=gx)                        # gx̂
        gx -= mean_gxhat
        gx -= xhat * mean_gxhat_xhat
        gx *= rstd


def _row_dots(a, w):
    """a [N, C] times w [C] summed over each row -> [N, 1]; w None: the row sums."""
    return row_sums(a) if w is None else (a @ w)[:, None]


class BatchNormFunction(Function):
    """Per-channel normalisation of x [N, C, ...] with batch statistics (training=True) or
    the given running ones (training=False), then weight [C] and bias [C].

    Replaces the composition `(x - x.mean(axes)) / (x.var(axes) + eps).sqrt() * w + b`
    over axes (0, 2, 3, ...). Fused for speed and memory: one node that keeps x - mean and
    1/std for backward (x̂ is their product; the per-channel 1/std is folded into the
    per-channel factors instead of a pass over x), where the composition would be about ten
    nodes each holding an array the size of x; the channel sums and dot products run over
    the conv layers' batch-last rows (backend.channel_sums, channel_dots). In training
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
            mean = channel_sums(x3) * (1.0 / n)                   # [C]
            xc = x3 - mean[:, None]                               # x - mean
            var = channel_dots(xc, xc) * (1.0 / n)                # biased: normalises
            if running_mean is not None:
                running_mean *= 1.0 - momentum
                running_mean += momentum * mean
                running_var *= 1.0 - momentum
                running_var += (momentum * n / (n - 1)) * var     # unbiased: estimates
        else:
            mean, var = running_mean.astype(x.dtype), running_var.astype(x.dtype)
            xc = x3 - mean[:, None]
        rstd = var + eps
        rstd = xp.sqrt(rstd, out=rstd)
        rstd = xp.divide(1.0, rstd, out=rstd)                     # [C], 1/√(var + eps)
        self.xc, self.rstd, self.weight, self.training = xc, rstd, weight, training
        self.has_bias = bias is not None
        scale = rstd if weight is None else rstd * weight         # y = (x - mean) scale + b
        out = xc * scale[:, None]
        if bias is not None:
            out += bias[:, None]
        return out.reshape(x.shape)

    def backward(self, grad):
        xc, rstd, w, xp = self.xc, self.rstd, self.weight, get_array_module(grad)
        g = grad.reshape(xc.shape)                                # [N, C, L]
        gb = channel_sums(g)                                      # Σ g        [C]
        gw = channel_dots(g, xc) * rstd                           # Σ g x̂      [C]
        scale = rstd if w is None else w * rstd                   # ∂y/∂x̂ · ∂x̂/∂x, per channel
        if self.training:
            # the mean and variance depend on x too (Ioffe & Szegedy, section 3):
            # dx = w/std · (g - mean(g) - x̂ · mean(g x̂)), means over N and L; x̂ = xc/std
            inv_n = 1.0 / (g.shape[0] * g.shape[2])
            gx = xc * (rstd * gw * inv_n)[:, None]
            gx += (gb * inv_n)[:, None]
            xp.subtract(g, gx, out=gx)                            # in place: one array less
            gx *= scale[:, None]
        else:  # fixed statistics: a per-channel affine map
            gx = g * scale[:, None]
        gx = gx.reshape(grad.shape)
        if w is None:
            return gx
        return (gx, gw, gb) if self.has_bias else (gx, gw)

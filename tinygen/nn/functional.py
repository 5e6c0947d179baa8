"""tinygen.nn.functional: the stateless building blocks of models (PyTorch's names).

The hot spots of a transformer (linear, gelu, layer_norm, attention, cross_entropy) are
fused Functions from `fused.py`, convolutions come from `conv.py` and batch norm from
`batchnorm.py`; the rest are one-line compositions of Tensor ops.
"""

import numpy as np

from tinygen import ops
from tinygen.backend import check_index_bounds, device_of, get_array_module, to_device
from tinygen.nn import conv, fused
from tinygen.nn.batchnorm import batch_norm  # noqa: F401  (lives beside BatchNorm1d/2d)
from tinygen.random import dropout_generator
from tinygen.tensor import Tensor


def linear(x, weight, bias=None):
    """x @ weight.T + bias, with weight [out_features, in_features] as in PyTorch."""
    if bias is None:
        return fused.Linear.apply(x, weight)
    return fused.Linear.apply(x, weight, bias)


def relu(x):
    return x.relu()


def leaky_relu(x, negative_slope=0.01):
    """x where x > 0, else negative_slope * x: one fused node (relu(x) - slope * relu(-x)
    would be five)."""
    return fused.LeakyReLU.apply(x, negative_slope=negative_slope)


def sigmoid(x):
    return x.sigmoid()


def tanh(x):
    return x.tanh()


def gelu(x, approximate="tanh"):
    """GELU in the tanh form that GPT-2 uses (PyTorch's approximate='tanh')."""
    if approximate != "tanh":
        raise ValueError(f"gelu: only approximate='tanh' is implemented, got {approximate!r}")
    return fused.GELU.apply(x)


def softmax(x, axis=-1, *, dim=None):
    return ops.Softmax.apply(x, axis=axis if dim is None else dim)


def log_softmax(x, axis=-1, *, dim=None):
    return ops.LogSoftmax.apply(x, axis=axis if dim is None else dim)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise over the last axis (normalized_shape must be (C,), as in transformers)."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(
        normalized_shape)
    if shape != x.shape[-1:]:
        raise ValueError(f"layer_norm: normalized_shape {shape} must be the last axis of "
                         f"the input, whose shape is {x.shape}")
    inputs = [t for t in (weight, bias) if t is not None]
    if bias is not None and weight is None:
        raise ValueError("layer_norm: a bias without a weight is not supported")
    return fused.LayerNorm.apply(x, *inputs, eps=eps)


def _class_indices(target, op, like, bounds=None, ignore=None,
                   what="target {bad} is out of range for {high} classes"):
    """Integer indices as an array on the same device as the tensor `like`."""
    data = target.data if isinstance(target, Tensor) else target
    data = get_array_module(data).asarray(data)
    if data.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold integer class indices, got {data.dtype}")
    if bounds is not None:  # on the host before the upload, or queued on the device
        keep = data if ignore is None else data[data != ignore] if get_array_module(
            data) is np else get_array_module(data).where(data == ignore, bounds[0], data)
        check_index_bounds(keep, *bounds, op, what)
    return to_device(data, like.device)


def cross_entropy(logits, target, ignore_index=-100, reduction="mean"):
    """Cross-entropy of logits [N, V] (or [..., V], the class axis last) against integer
    targets [N] (or [...]); targets equal to ignore_index count for nothing."""
    target = _class_indices(target, "cross_entropy", logits, (0, logits.shape[-1]),
                            ignore=ignore_index)
    if tuple(target.shape) != logits.shape[:-1]:
        raise ValueError(f"cross_entropy: logits {logits.shape} need targets of shape "
                         f"{logits.shape[:-1]}, got {tuple(target.shape)}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: unknown reduction {reduction!r}")
    flat = logits.reshape(-1, logits.shape[-1]) if logits.ndim != 2 else logits
    out = fused.CrossEntropy.apply(flat, ignore_index=ignore_index, reduction=reduction,
                                   target=target.reshape(-1))
    return out.reshape(target.shape) if reduction == "none" else out


def nll_loss(log_probs, target):
    """Mean of -log_probs[target] for log-probabilities [N, V] (or [..., V])."""
    target = _class_indices(target, "nll_loss", log_probs, (0, log_probs.shape[-1]))
    if tuple(target.shape) != log_probs.shape[:-1]:
        raise ValueError(f"nll_loss: log_probs {log_probs.shape} need targets of shape "
                         f"{log_probs.shape[:-1]}, got {tuple(target.shape)}")
    flat, target = log_probs.reshape(-1, log_probs.shape[-1]), target.reshape(-1)
    return -flat[get_array_module(target).arange(len(target)), target].mean()


def mse_loss(input, target, reduction="mean"):
    diff = input - target
    sq = diff * diff
    return sq.mean() if reduction == "mean" else sq.sum() if reduction == "sum" else sq


def binary_cross_entropy_with_logits(logits, target, reduction="mean"):
    """-[y log σ(x) + (1-y) log(1-σ(x))], written as max(x,0) - x y + log(1 + e^-|x|),
    which never takes the log of a rounded-to-zero probability."""
    loss = logits.relu() - logits * target + ((-logits.abs()).exp() + 1).log()
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


def _keep_mask(shape, x, p):
    """A float mask with 1/(1-p) where kept, 0 where dropped (inverted dropout)."""
    keep = dropout_generator(x.device).random(shape, dtype=x.dtype) >= p  # same on any device
    return keep.astype(x.dtype) * (1.0 / (1.0 - p))


def dropout(x, p=0.5, training=True):
    if not 0 <= p < 1:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0:
        return x
    return fused.Dropout.apply(x, mask=_keep_mask(x.shape, x, p))


def embedding(idx, weight):
    """Rows of weight [V, C] picked by integer idx [...] -> [..., C]."""
    idx = _class_indices(idx, "embedding", weight, (0, weight.shape[0]),
                         what="index {bad} is out of range for {high} rows")
    return fused.Embedding.apply(weight, idx=idx)


def scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False,
                                 scale=None, training=True):
    """softmax(q kᵀ/√hs) v over [..., T, hs] inputs, optionally causal (query i sees keys
    up to i) and with attn_mask: boolean (True = may attend) or additive float."""
    if not (q.shape[-1] == k.shape[-1] and k.shape[-2] == v.shape[-2]):
        raise ValueError(f"scaled_dot_product_attention: q {q.shape}, k {k.shape}, "
                         f"v {v.shape} do not fit ([..., Tq, hs], [..., Tk, hs], [..., Tk, hv])")
    mask = None
    if attn_mask is not None:
        m = attn_mask.data if isinstance(attn_mask, Tensor) else attn_mask
        xp = get_array_module(m)
        if device_of(m) != q.device:
            raise RuntimeError(f"scaled_dot_product_attention: attn_mask is on {device_of(m)}, "
                               f"q on {q.device}")
        mask = xp.where(m, 0, -xp.inf).astype(q.dtype) if m.dtype == bool else m
    drop = None
    if dropout_p > 0 and training:
        shape = np.broadcast_shapes(q.shape[:-2], k.shape[:-2]) + (q.shape[-2], k.shape[-2])
        drop = _keep_mask(shape, q, dropout_p)
    return fused.Attention.apply(q, k, v, is_causal=is_causal, attn_mask=mask, scale=scale,
                                 dropout=drop)


def conv2d(x, weight, bias=None, stride=1, padding=0):
    """2-D convolution (cross-correlation, as in PyTorch): x [N, C_in, H, W], weight
    [C_out, C_in, K_h, K_w], bias [C_out] -> [N, C_out, H_out, W_out] with
    H_out = (H + 2 padding - K_h) // stride + 1. stride, padding: int or (h, w)."""
    stride, padding = conv.check_conv_args("conv2d", x, weight, bias, stride, padding)
    params = (weight,) if bias is None else (weight, bias)
    return conv.Conv2d.apply(x, *params, stride=stride, padding=padding)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0):
    """Transposed convolution (the gradient of conv2d with respect to its input, used as
    an upsampling layer): x [N, C_in, H, W], weight [C_in, C_out, K_h, K_w] ->
    [N, C_out, (H - 1) stride - 2 padding + K_h + output_padding, ...]."""
    stride, padding, output_padding = conv.check_conv_args(
        "conv_transpose2d", x, weight, bias, stride, padding, output_padding)
    params = (weight,) if bias is None else (weight, bias)
    return conv.ConvTranspose2d.apply(x, *params, stride=stride, padding=padding,
                                      output_padding=output_padding)

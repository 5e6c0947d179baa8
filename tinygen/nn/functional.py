"""tinygen.nn.functional: the stateless building blocks of models (PyTorch's names).

Each wrapper checks its arguments (errors name the function and the shapes) and calls one
Function of tinygen/ops/ (linear, gelu, layer_norm, batch_norm, attention, cross_entropy,
embedding, dropout, conv2d, ...) or is a one-line composition of Tensor ops.
"""

import math

import numpy as np

from tinygen import ops
from tinygen.backend import check_index_bounds, device_of, get_array_module, to_device
from tinygen.nn.functional_activation import (  # noqa: F401  (the F namespace)
    celu,
    elu,
    gelu,
    glu,
    hardsigmoid,
    hardswish,
    hardtanh,
    logsigmoid,
    mish,
    relu6,
    selu,
    silu,
    softplus,
    softsign,
    swiglu,
)
from tinygen.nn.functional_conv import (  # noqa: F401
    conv1d,
    conv2d,
    conv_transpose1d,
    conv_transpose2d,
)
from tinygen.nn.functional_loss import (  # noqa: F401
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cosine_similarity,
    cross_entropy,
    huber_loss,
    kl_div,
    l1_loss,
    mse_loss,
    nll_loss,
    normalize,
    smooth_l1_loss,
)
from tinygen.nn.functional_norm import group_norm, instance_norm, rms_norm  # noqa: F401
from tinygen.nn.functional_pad import pad  # noqa: F401
from tinygen.nn.functional_pool import (  # noqa: F401
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    avg_pool1d,
    avg_pool2d,
    interpolate,
    max_pool1d,
    max_pool2d,
    pixel_shuffle,
    pixel_unshuffle,
)
from tinygen.random import dropout_generator
from tinygen.tensor import Tensor


def linear(x, weight, bias=None):
    """x @ weight.T + bias, with weight [out_features, in_features] as in PyTorch."""
    if bias is None:
        return ops.LinearFunction.apply(x, weight)
    return ops.LinearFunction.apply(x, weight, bias)


def relu(x):
    return x.relu()


def leaky_relu(x, negative_slope=0.01):
    """x where x > 0, else negative_slope * x: one fused node (relu(x) - slope * relu(-x)
    would be five)."""
    return ops.LeakyReLUFunction.apply(x, negative_slope=negative_slope)


def sigmoid(x):
    return x.sigmoid()


def tanh(x):
    return x.tanh()


def softmax(x, axis=-1, *, dim=None):
    return ops.Softmax.apply(x, axis=axis if dim is None else dim)


def log_softmax(x, axis=-1, *, dim=None):
    return ops.LogSoftmax.apply(x, axis=axis if dim is None else dim)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise over the last axis (normalized_shape must be (C,), as in transformers)."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(
        normalized_shape)
    if not shape or shape != tuple(x.shape[x.ndim - len(shape):]):
        raise ValueError(f"layer_norm: normalized_shape {shape} must be the trailing axes of "
                         f"the input, whose shape is {x.shape}")
    if bias is not None and weight is None:
        raise ValueError("layer_norm: a bias without a weight is not supported")
    if len(shape) > 1:  # several trailing axes: normalise them as one flattened axis
        flat = [t if t is None else t.reshape(-1) for t in (weight, bias)]
        n = math.prod(shape)
        out = layer_norm(x.reshape(*x.shape[:x.ndim - len(shape)], n), n, *flat, eps=eps)
        return out.reshape(x.shape)
    inputs = [t for t in (weight, bias) if t is not None]
    return ops.LayerNormFunction.apply(x, *inputs, eps=eps)


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
        if t is not None and device_of(t.data if isinstance(t, Tensor) else t) != x.device:
            raise RuntimeError(f"batch_norm: {name} is on "
                               f"{device_of(t.data if isinstance(t, Tensor) else t)}, the input "
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
    if weight is None and bias is not None:  # the Function takes a bias only with a weight
        weight = Tensor(get_array_module(x.data).ones(C, dtype=x.dtype))
    params = [t for t in (weight, bias) if t is not None]
    # the running statistics are updated in place: the Function gets their arrays
    stats = [t.data if isinstance(t, Tensor) else t for t in (running_mean, running_var)]
    return ops.BatchNormFunction.apply(x, *params, training=training, running_mean=stats[0],
                                       running_var=stats[1], momentum=momentum, eps=eps)


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


def one_hot(tensor, num_classes=-1):
    """int64 class ids [...] -> [..., num_classes] int64 with a 1 at each id (no gradient,
    as in PyTorch); num_classes=-1 takes max id + 1."""
    ids = tensor.data if isinstance(tensor, Tensor) else np.asarray(tensor)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"one_hot: class ids must be integers, got {ids.dtype}")
    xp = get_array_module(ids)
    n = int(ids.max()) + 1 if num_classes == -1 else num_classes
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= n):
        raise ValueError(f"one_hot: class ids must be in [0, {n}), got "
                         f"{int(ids.min())}..{int(ids.max())}")
    return Tensor._make((ids[..., None] == xp.arange(n)).astype(np.int64), None)


def _keep_mask(shape, x, p):
    """A float mask with 1/(1-p) where kept, 0 where dropped (inverted dropout)."""
    keep = dropout_generator(x.device).random(shape, dtype=x.dtype) >= p  # same on any device
    return keep.astype(x.dtype) * (1.0 / (1.0 - p))


def dropout(x, p=0.5, training=True):
    if not 0 <= p < 1:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0:
        return x
    return ops.DropoutFunction.apply(x, mask=_keep_mask(x.shape, x, p))


def embedding(idx, weight):
    """Rows of weight [V, C] picked by integer idx [...] -> [..., C]."""
    idx = _class_indices(idx, "embedding", weight, (0, weight.shape[0]),
                         what="index {bad} is out of range for {high} rows")
    return ops.EmbeddingFunction.apply(weight, idx=idx)


def scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False,
                                 scale=None, training=True):
    """softmax(q kᵀ/√hs) v over [..., T, hs] inputs, optionally causal (query i sees keys
    up to i) and with attn_mask: boolean (True = may attend) or additive float."""
    if not (q.shape[-1] == k.shape[-1] and k.shape[-2] == v.shape[-2]):
        raise ValueError(f"scaled_dot_product_attention: q {q.shape}, k {k.shape}, "
                         f"v {v.shape} do not fit ([..., Tq, hs], [..., Tk, hs], [..., Tk, hv])")
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: pass is_causal=True or attn_mask, "
                         "not both (PyTorch raises too)")
    drop = None
    if dropout_p > 0 and training:
        shape = np.broadcast_shapes(q.shape[:-2], k.shape[:-2]) + (q.shape[-2], k.shape[-2])
        drop = _keep_mask(shape, q, dropout_p)
    if isinstance(attn_mask, Tensor) and attn_mask.requires_grad:
        # a learned additive bias: the composition, so that the mask gets its gradient too
        # (the fused Attention treats its mask as a constant)
        scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
        att = ((q @ k.transpose(-2, -1)) * scale + attn_mask).softmax(-1)  # [..., Tq, Tk]
        return (att if drop is None else att * drop) @ v
    mask = None
    if attn_mask is not None:
        m = attn_mask.data if isinstance(attn_mask, Tensor) else attn_mask
        xp = get_array_module(m)
        if device_of(m) != q.device:
            raise RuntimeError(f"scaled_dot_product_attention: attn_mask is on {device_of(m)}, "
                               f"q on {q.device}")
        mask = xp.where(m, 0, -xp.inf).astype(q.dtype) if m.dtype == bool else m
    return ops.ScaledDotProductAttention.apply(q, k, v, is_causal=is_causal, attn_mask=mask,
                                               scale=scale, dropout=drop)


def packed_qkv_attention(qkv, n_head, dropout_p=0.0, is_causal=False, training=True):
    """Attention over one projection's packed output qkv [B, T, 3C] (q, k, v side by side,
    n_head heads each) -> [B, T, C], the heads side by side again: the same numbers as
    splitting q, k, v into heads, scaled_dot_product_attention, and merging the heads,
    in one node (ops.PackedQKVAttention says why that is faster)."""
    if qkv.ndim != 3 or qkv.shape[2] % (3 * n_head):
        raise ValueError(f"packed_qkv_attention: qkv {tuple(qkv.shape)} must be [B, T, 3C] "
                         f"with C divisible by n_head={n_head}")
    B, T, _ = qkv.shape
    drop = _keep_mask((B, n_head, T, T), qkv, dropout_p) if dropout_p > 0 and training else None
    return ops.PackedQKVAttention.apply(qkv, n_head=n_head, is_causal=is_causal, dropout=drop)

"""Losses of tinygen.nn.functional (PyTorch's names, signatures and defaults).

Class axis: as in PyTorch, the classes are axis 1 of the input: [N, C] or [N, C, d1, ...]
with integer targets [N] or [N, d1, ...]. tinygen also accepts the class axis LAST,
[..., C] with targets [...] (the language-model layout, logits [B, T, V] and targets
[B, T]), when the target's shape fits only that reading. Where the target's shape fits
both (input [N, C, C] and target [N, C]: the sequence length equals the vocabulary), the
call raises ValueError rather than guess: reshape to [N, C]. Probability targets have the
input's shape and always use axis 1.

cross_entropy with integer targets is one fused Function (ops/loss.py); every other loss is
a composition of Tensor ops.
"""

import numpy as np

from tinygen import ops
from tinygen.backend import check_index_bounds, get_array_module, to_device
from tinygen.tensor import Tensor, where

REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss, reduction, op):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: unknown reduction {reduction!r} (one of {REDUCTIONS})")
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


def _array(t, like):
    """t (Tensor, array or None) as an array of like's float dtype on its device."""
    if t is None:
        return None
    data = t.data if isinstance(t, Tensor) else t if hasattr(t, "dtype") else np.asarray(t)
    return to_device(data, like.device).astype(like.dtype, copy=False)


def _classes_last(x, target, op):
    """The input with its class axis moved last and flattened: ([M, C], integer target [M]
    as an array on x's device, the target's own shape, C)."""
    data = target.data if isinstance(target, Tensor) else target
    data = get_array_module(data).asarray(data)
    if data.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold integer class indices (or, for "
                        f"cross_entropy, class probabilities of the input's shape {x.shape}), "
                        f"got {data.dtype} of shape {tuple(data.shape)}")
    shape = tuple(data.shape)
    if x.ndim == 1 and shape == ():                                   # one unbatched sample
        return x.reshape(1, -1), to_device(data.reshape(1), x.device), shape, x.shape[0]
    torch_like, last = (x.shape[0],) + tuple(x.shape[2:]), tuple(x.shape[:-1])
    if x.ndim > 2 and shape == torch_like == last:
        raise ValueError(f"{op}: input {x.shape} with target {shape} is ambiguous: the "
                         f"classes could be axis 1 (PyTorch's layout) or the last axis; "
                         f"reshape to [N, C] and [N] (e.g. input.reshape(-1, C))")
    if x.ndim <= 2 or shape == torch_like:                            # PyTorch: axis 1
        axis = 1
    elif shape == last:                                               # classes last
        axis = x.ndim - 1
    else:
        raise ValueError(f"{op}: input {x.shape} needs an integer target of shape "
                         f"{(x.shape[0],) + tuple(x.shape[2:])} (classes on axis 1, as in "
                         f"PyTorch) or {tuple(x.shape[:-1])} (classes last), got {shape}")
    if x.ndim == 2 and shape != (x.shape[0],):
        raise ValueError(f"{op}: input {x.shape} needs a target of shape ({x.shape[0]},), "
                         f"got {shape}")
    C = x.shape[axis]
    if axis != x.ndim - 1:
        x = x.permute(*[a for a in range(x.ndim) if a != axis], axis)
    return x.reshape(-1, C), to_device(data.reshape(-1), x.device), shape, C


def _check_bounds(target, C, ignore_index, op):
    xp = get_array_module(target)
    keep = target[target != ignore_index] if xp is np else xp.where(
        target == ignore_index, 0, target)
    check_index_bounds(keep, 0, C, op, "target {bad} is out of range for {high} classes")


def _check_weight(weight, C, op):
    if weight is not None and tuple(weight.shape) != (C,):
        raise ValueError(f"{op}: weight must have one entry per class, shape ({C},), got "
                         f"{tuple(weight.shape)}")


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """Cross-entropy of logits against integer class targets (or class probabilities of
    the input's shape), PyTorch's F.cross_entropy: class `weight` [C], `ignore_index`,
    `reduction`, and `label_smoothing` ε (the target mixed with the uniform distribution:
    (1 - ε) target + ε / C). See the module docstring for the class axis."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"cross_entropy: unknown reduction {reduction!r} (one of {REDUCTIONS})")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got "
                         f"{label_smoothing}")
    tdata = target.data if isinstance(target, Tensor) else target
    if getattr(tdata, "dtype", None) is None:  # a list or a number
        tdata = np.asarray(tdata)
    if tdata.dtype.kind == "f":
        return _soft_cross_entropy(input, target, weight, reduction, label_smoothing)
    flat, idx, shape, C = _classes_last(input, target, "cross_entropy")
    _check_weight(weight, C, "cross_entropy")
    _check_bounds(idx, C, ignore_index, "cross_entropy")
    out = ops.CrossEntropy.apply(flat, target=idx, ignore_index=ignore_index,
                                 reduction=reduction, weight=_array(weight, input),
                                 label_smoothing=label_smoothing)
    return out.reshape(shape) if reduction == "none" else out


def _soft_cross_entropy(x, target, weight, reduction, eps):
    """-Σ_c w_c q_c log softmax(x)_c with q = (1 - ε) target + ε / C, classes on axis 1;
    'mean' averages over the samples (and positions), as PyTorch does."""
    target = target if isinstance(target, Tensor) else Tensor(_array(target, x))
    if tuple(target.shape) != tuple(x.shape):
        raise ValueError(f"cross_entropy: target must hold integer class indices, or class "
                         f"probabilities of the input's shape {x.shape}; got {target.dtype} "
                         f"of shape {tuple(target.shape)}")
    axis = 1 if x.ndim > 1 else 0
    C = x.shape[axis]
    _check_weight(weight, C, "cross_entropy")
    q = target * (1 - eps) + eps / C if eps else target
    if weight is not None:
        bshape = [1] * x.ndim
        bshape[axis] = C
        q = q * Tensor(_array(weight, x).reshape(bshape))
    return _reduce(-(x.log_softmax(axis) * q).sum(axis), reduction, "cross_entropy")


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """-input[target] · weight[target] for log-probabilities (PyTorch's F.nll_loss); 'mean'
    divides by the summed weights of the kept targets. Class axis as in cross_entropy."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"nll_loss: unknown reduction {reduction!r} (one of {REDUCTIONS})")
    flat, idx, shape, C = _classes_last(input, target, "nll_loss")
    _check_weight(weight, C, "nll_loss")
    _check_bounds(idx, C, ignore_index, "nll_loss")
    xp = get_array_module(idx)
    valid = idx != ignore_index
    safe = xp.where(valid, idx, 0)
    w = valid.astype(input.dtype)
    if weight is not None:
        w = w * _array(weight, input)[safe]
    losses = -flat[xp.arange(len(safe)), safe] * Tensor(w)                      # [M]
    if reduction == "none":
        return losses.reshape(shape)
    return losses.sum() / Tensor(w.sum()) if reduction == "mean" else losses.sum()


def mse_loss(input, target, reduction="mean"):
    diff = input - target
    return _reduce(diff * diff, reduction, "mse_loss")


def l1_loss(input, target, reduction="mean"):
    return _reduce((input - target).abs(), reduction, "l1_loss")


def huber_loss(input, target, reduction="mean", delta=1.0):
    """0.5 d² where |d| < delta, else delta (|d| - 0.5 delta), d = input - target."""
    d = input - target
    a = d.abs()
    loss = where(a.data < delta, 0.5 * d * d, delta * (a - 0.5 * delta))
    return _reduce(loss, reduction, "huber_loss")


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    """0.5 d² / beta where |d| < beta, else |d| - 0.5 beta (huber_loss / beta)."""
    if beta == 0:
        return l1_loss(input, target, reduction)
    d = input - target
    a = d.abs()
    loss = where(a.data < beta, 0.5 * d * d / beta, a - 0.5 * beta)
    return _reduce(loss, reduction, "smooth_l1_loss")


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """-w [y log p + (1 - y) log(1 - p)] for probabilities p; each log is clamped at -100,
    as PyTorch does, so that p = 0 or 1 gives a finite loss."""
    log_p = input.log().clip(min=-100.0)
    log_1mp = (1 - input).log().clip(min=-100.0)
    loss = -(target * log_p + (1 - target) * log_1mp)
    return _reduce(loss if weight is None else loss * weight, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None):
    """-w [p_w y log σ(x) + (1 - y) log(1 - σ(x))], with log σ(x) = -softplus(-x) written
    min(x, 0) - log1p(e^(-|x|)): never the log of a rounded-to-zero probability.
    pos_weight [C] weighs the positive term per class (broadcast over the last axis)."""
    log_sig = input.minimum(0) - (-input.abs()).exp().log1p()   # log σ(x)
    log_1msig = log_sig - input                                  # log(1 - σ(x)) = log σ(-x)
    pos = target * log_sig if pos_weight is None else target * log_sig * pos_weight
    loss = -(pos + (1 - target) * log_1msig)
    return _reduce(loss if weight is None else loss * weight, reduction,
                   "binary_cross_entropy_with_logits")


def kl_div(input, target, reduction="mean", log_target=False):
    """Σ target (log target - input) for log-probabilities `input` (PyTorch's pointwise
    KL); reduction='batchmean' divides the sum by the batch size, the true KL divergence.
    target = 0 contributes 0 (PyTorch's xlogy convention)."""
    if log_target:
        loss = target.exp() * (target - input)
    else:
        t = target.data if isinstance(target, Tensor) else target
        safe = where(t > 0, target, 1.0)                 # log(1) = 0 where target = 0
        loss = target * (safe.log() - input)
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    return _reduce(loss, reduction, "kl_div")


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """x1 · x2 / (max(‖x1‖, eps) max(‖x2‖, eps)) along dim (PyTorch ≥ 1.12's form)."""
    n1 = (x1 * x1).sum(dim).sqrt().clip(min=eps)
    n2 = (x2 * x2).sum(dim).sqrt().clip(min=eps)
    return (x1 * x2).sum(dim) / (n1 * n2)


def normalize(input, p=2.0, dim=1, eps=1e-12):
    """input / max(‖input‖_p, eps) along dim."""
    if p == 2:
        norm = (input * input).sum(dim, keepdims=True).sqrt()
    else:
        norm = (input.abs() ** p).sum(dim, keepdims=True) ** (1.0 / p)
    return input / norm.clip(min=eps)

"""The CUDA kernels of ops/*.cu, each beside its reference (optim/adam.cu: optim/adam_kernel.py).

Per kernel family three functions, in this order:
  `<op>_reference(...)`  the NumPy/CuPy-array code: any device, any float dtype; what runs
                         while the kernel is switched off (the default), and what
                         tests/test_cuda_kernels.py compares the kernel with;
  `<op>_cuda(...)`       the launch: CuPy float32 arrays only;
  `<op>(...)`            the dispatch: the kernel when it is switched on (ops/kernels.py)
                         and the arrays are CuPy float32, else the reference.
The Functions in ops/ check `kernels.use` themselves and then launch `<op>_cuda` (their
fallback is their own array code, not the reference); docs/gpu_kernels.md lists which.
Shapes use B, T, C, nh, hs; N is a count of rows (B*T tokens), V a vocabulary.
"""

import math

import numpy as np

from tinygen.backend import get_array_module
from tinygen.ops import conv, kernels, philox
from tinygen.ops.kernels import grid_1d, launch, row_threads

i32, i64, u64, f32 = np.int32, np.int64, np.uint64, np.float32


def _rows(x):
    """x [..., C] -> a C-contiguous [N, C] array (a view when x is contiguous already)."""
    xp = get_array_module(x)
    return xp.ascontiguousarray(x).reshape(-1, x.shape[-1])


# ---- layer_norm (normalization.cu) -------------------------------------------------------
def layer_norm_forward_reference(x, weight=None, bias=None, eps=1e-5):
    """x [..., C] -> (out [..., C], mean [...], rstd [...]), rstd = 1 / sqrt(var + eps)."""
    xp = get_array_module(x)
    mean = x.mean(axis=-1)
    xc = x - mean[..., None]
    rstd = 1.0 / xp.sqrt((xc * xc).mean(axis=-1) + eps)
    out = xc * rstd[..., None]
    if weight is not None:
        out *= weight
    if bias is not None:
        out += bias
    return out, mean, rstd


def layer_norm_forward_cuda(x, weight=None, bias=None, eps=1e-5):
    xp, rows = get_array_module(x), _rows(x)
    N, C = rows.shape
    out = xp.empty_like(rows)
    mean, rstd = xp.empty(N, np.float32), xp.empty(N, np.float32)
    if N:
        launch("layer_norm", "layer_norm_forward", (N,), (row_threads(C),),
               (rows, rows if weight is None else xp.ascontiguousarray(weight),
                rows if bias is None else xp.ascontiguousarray(bias),
                out, mean, rstd, i32(N), i32(C), f32(eps),
                i32(weight is not None), i32(bias is not None)))
    return out.reshape(x.shape), mean.reshape(x.shape[:-1]), rstd.reshape(x.shape[:-1])


def layer_norm_forward(x, weight=None, bias=None, eps=1e-5):
    if kernels.use("layer_norm", x, weight, bias):
        return layer_norm_forward_cuda(x, weight, bias, eps)
    return layer_norm_forward_reference(x, weight, bias, eps)


def layer_norm_backward_reference(grad, x, mean, rstd, weight=None, has_bias=False):
    """-> (gx [..., C], gweight [C] or None, gbias [C] or None)."""
    xhat = (x - mean[..., None]) * rstd[..., None]
    lead = tuple(range(x.ndim - 1))
    gw = (grad * xhat).sum(axis=lead) if weight is not None else None
    gb = grad.sum(axis=lead) if has_bias else None
    gxhat = grad * weight if weight is not None else grad
    # gx = rstd * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat))
    gx = gxhat - gxhat.mean(axis=-1, keepdims=True)
    gx -= xhat * (gxhat * xhat).mean(axis=-1, keepdims=True)
    gx *= rstd[..., None]
    return gx, gw, gb


def layer_norm_backward_cuda(grad, x, mean, rstd, weight=None, has_bias=False):
    xp, g, rows = get_array_module(x), _rows(grad), _rows(x)
    N, C = rows.shape
    mean, rstd = xp.ascontiguousarray(mean).reshape(N), xp.ascontiguousarray(rstd).reshape(N)
    gx = xp.empty_like(rows)
    if N:
        launch("layer_norm", "layer_norm_backward_input", (N,), (row_threads(C),),
               (g, rows, mean, rstd, g if weight is None else xp.ascontiguousarray(weight),
                gx, i32(N), i32(C),
                i32(weight is not None)))
    gw = gb = None
    if weight is not None or has_bias:
        slices = max(1, min((N + 7) // 8, 128))            # row slices, one partial sum each
        pw, pb = xp.empty((slices, C), np.float32), xp.empty((slices, C), np.float32)
        launch("layer_norm", "layer_norm_backward_params", ((C + 31) // 32, slices), (32, 8),
               (g, rows, mean, rstd, pw, pb, i32(N), i32(C)))
        gw = pw.sum(axis=0) if weight is not None else None
        gb = pb.sum(axis=0) if has_bias else None
    return gx.reshape(x.shape), gw, gb


def layer_norm_backward(grad, x, mean, rstd, weight=None, has_bias=False):
    if kernels.use("layer_norm", grad, x, mean, rstd, weight):
        return layer_norm_backward_cuda(grad, x, mean, rstd, weight, has_bias)
    return layer_norm_backward_reference(grad, x, mean, rstd, weight, has_bias)


# ---- GELU, tanh form, and bias + GELU (activation.cu) ------------------------------------
GELU_K = math.sqrt(2.0 / math.pi)


def gelu_forward_reference(x):
    xp = get_array_module(x)
    return 0.5 * x * (1.0 + xp.tanh(GELU_K * (x + 0.044715 * x * x * x)))


def gelu_backward_reference(x, grad):
    xp = get_array_module(x)
    t = xp.tanh(GELU_K * (x + 0.044715 * x * x * x))
    return grad * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_K
                   * (1.0 + 3 * 0.044715 * x * x))


def _elementwise(kernel, out_like, *arrays, extra=()):
    xp = get_array_module(out_like)
    arrays = [xp.ascontiguousarray(a) for a in arrays]
    out = xp.empty(out_like.shape, np.float32)
    launch("gelu", kernel, grid_1d(out.size), (256,), (*arrays, out, i64(out.size), *extra))
    return out


def gelu_forward_cuda(x):
    return _elementwise("gelu_forward", x, x)


def gelu_backward_cuda(x, grad):
    return _elementwise("gelu_backward", x, x, grad)


def gelu_forward(x):
    return gelu_forward_cuda(x) if kernels.use("gelu", x) else gelu_forward_reference(x)


def gelu_backward(x, grad):
    if kernels.use("gelu", x, grad):
        return gelu_backward_cuda(x, grad)
    return gelu_backward_reference(x, grad)


def bias_gelu_forward_reference(x, bias):
    """gelu(x + bias) for x [..., C], bias [C]: the MLP's first Linear's epilogue."""
    return gelu_forward_reference(x + bias)


def bias_gelu_backward_reference(x, bias, grad):
    """-> (gx [..., C], gbias [C])."""
    gpre = gelu_backward_reference(x + bias, grad)
    return gpre, gpre.reshape(-1, bias.shape[0]).sum(axis=0)


def bias_gelu_forward_cuda(x, bias):
    return _elementwise("bias_gelu_forward", x, x, bias, extra=(i32(bias.shape[0]),))


def bias_gelu_backward_cuda(x, bias, grad):
    gpre = _elementwise("bias_gelu_backward", x, x, bias, grad, extra=(i32(bias.shape[0]),))
    return gpre, gpre.reshape(-1, bias.shape[0]).sum(axis=0)


def bias_gelu_forward(x, bias):
    if kernels.use("gelu", x, bias):
        return bias_gelu_forward_cuda(x, bias)
    return bias_gelu_forward_reference(x, bias)


def bias_gelu_backward(x, bias, grad):
    if kernels.use("gelu", x, bias, grad):
        return bias_gelu_backward_cuda(x, bias, grad)
    return bias_gelu_backward_reference(x, bias, grad)


# ---- softmax(scale * scores + causal mask) (attention.cu) --------------------------------
MAX_KEYS = 1024   # SOFTMAX_THREADS * SOFTMAX_PER_THREAD in attention.cu


def attention_softmax_forward_reference(scores, scale, causal):
    """scores [..., Tq, Tk] (q kᵀ) -> att [..., Tq, Tk]. With a KV cache query i sits at
    position Tk - Tq + i and sees keys up to it, as Attention._causal_mask."""
    xp = get_array_module(scores)
    att = scores * scale
    if causal:
        Tq, Tk = scores.shape[-2:]
        i = xp.arange(Tq)[:, None] + (Tk - Tq)
        att = xp.where(xp.arange(Tk)[None, :] > i, -xp.inf, att)
    att = att - att.max(axis=-1, keepdims=True)
    att = xp.exp(att)
    return att / att.sum(axis=-1, keepdims=True)


def attention_softmax_forward_cuda(scores, scale, causal):
    xp, Tq, Tk = get_array_module(scores), *scores.shape[-2:]
    s = xp.ascontiguousarray(scores)
    att, R = xp.empty_like(s), s.size // Tk if Tk else 0
    if R:
        launch("attention_softmax", "attention_softmax_forward", (R,), (256,),
               (s, att, i32(R), i32(Tq), i32(Tk), f32(scale), i32(bool(causal))))
    return att


def attention_softmax_forward(scores, scale, causal):
    if scores.shape[-1] <= MAX_KEYS and kernels.use("attention_softmax", scores):
        return attention_softmax_forward_cuda(scores, scale, causal)
    return attention_softmax_forward_reference(scores, scale, causal)


def attention_softmax_backward_reference(att, gatt, scale):
    """-> gscores = scale * att * (gatt - sum(gatt * att)), the softmax Jacobian."""
    return scale * att * (gatt - (gatt * att).sum(axis=-1, keepdims=True))


def attention_softmax_backward_cuda(att, gatt, scale):
    xp, Tk = get_array_module(att), att.shape[-1]
    a, g = xp.ascontiguousarray(att), xp.ascontiguousarray(gatt)
    gs, R = xp.empty_like(a), a.size // Tk if Tk else 0
    if R:
        launch("attention_softmax", "attention_softmax_backward", (R,), (256,),
               (a, g, gs, i32(R), i32(Tk), f32(scale)))
    return gs


def attention_softmax_backward(att, gatt, scale):
    if att.shape[-1] <= MAX_KEYS and kernels.use("attention_softmax", att, gatt):
        return attention_softmax_backward_cuda(att, gatt, scale)
    return attention_softmax_backward_reference(att, gatt, scale)


# ---- cross-entropy loss and gradient (loss.cu) -------------------------------------------
def cross_entropy_forward_backward_reference(logits, target, ignore_index=-100):
    """logits [N, V], target [N] ints -> (loss [N], dlogits [N, V]): per row
    logsumexp - logits[target] and softmax - one_hot(target); both 0 on ignored rows.
    Targets outside [0, V) are the caller's to reject (on the host, before upload)."""
    xp = get_array_module(logits)
    N = logits.shape[0]
    valid = target != ignore_index
    safe = xp.where(valid, target, 0)
    m = logits.max(axis=1, keepdims=True)
    lse = xp.log(xp.exp(logits - m).sum(axis=1, keepdims=True)) + m       # [N, 1]
    dlogits = xp.exp(logits - lse)
    dlogits[xp.arange(N), safe] -= 1.0
    dlogits *= valid[:, None]
    loss = (lse[:, 0] - logits[xp.arange(N), safe]) * valid
    return loss, dlogits


def cross_entropy_forward_backward_cuda(logits, target, ignore_index=-100):
    xp = get_array_module(logits)
    x = xp.ascontiguousarray(logits)
    N, V = x.shape
    t = xp.ascontiguousarray(xp.asarray(target, dtype=np.int64))
    loss, dlogits = xp.empty(N, np.float32), xp.empty_like(x)
    if N:
        launch("cross_entropy", "cross_entropy_forward_backward", (N,), (row_threads(V),),
               (x, t, loss, dlogits, i32(N), i32(V), i64(ignore_index)))
    return loss, dlogits


def cross_entropy_forward_backward(logits, target, ignore_index=-100):
    if kernels.use("cross_entropy", logits):
        return cross_entropy_forward_backward_cuda(logits, target, ignore_index)
    return cross_entropy_forward_backward_reference(logits, target, ignore_index)


# ---- dropout with Philox-4x32-10 (dropout.cu; reference: ops/philox.py) ------------------
def dropout_mask_reference(shape, p, seed, offset, xp=np):
    """float32 mask [shape]: 1/(1-p) where kept, 0 where dropped; stream (seed, offset)."""
    return philox.dropout_mask(shape, p, seed, offset, xp)


def dropout_apply_reference(x, p, seed, offset):
    """x * mask; with grad for x it is also the backward, the mask regenerated."""
    return x * dropout_mask_reference(x.shape, p, seed, offset, get_array_module(x))


def _dropout_args(n, p, seed, offset):
    seed, offset = philox._check_u64("seed", seed), philox._check_u64("offset", offset)
    if not 0 <= p < 1:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    return (i64(n), f32(p), f32(1.0 / (1.0 - p)), u64(seed), u64(offset))


def dropout_mask_cuda(shape, p, seed, offset, xp):
    mask = xp.empty(shape, np.float32)
    launch("dropout", "dropout_mask", grid_1d((mask.size + 3) // 4), (256,),
           (mask, *_dropout_args(mask.size, p, seed, offset)))
    return mask


def dropout_apply_cuda(x, p, seed, offset):
    xp = get_array_module(x)
    x = xp.ascontiguousarray(x)
    out = xp.empty_like(x)
    launch("dropout", "dropout_apply", grid_1d((x.size + 3) // 4), (256,),
           (x, out, *_dropout_args(x.size, p, seed, offset)))
    return out


def dropout_mask(shape, p, seed, offset, xp=np):
    if xp is not np and kernels.enabled("dropout"):
        return dropout_mask_cuda(shape, p, seed, offset, xp)
    return dropout_mask_reference(shape, p, seed, offset, xp)


def dropout_apply(x, p, seed, offset):
    if kernels.use("dropout", x):
        return dropout_apply_cuda(x, p, seed, offset)
    return dropout_apply_reference(x, p, seed, offset)


# ---- im2col / col2im (conv.cu) -----------------------------------------------------------
# The references are tinygen/ops/conv.py's own im2col / col2im.
def im2col_reference(rows, kernel, stride, padding, out_size):
    """rows [C, H, W, N] (any strides) -> cols [C*Kh*Kw, Ho*Wo*N]."""
    return conv.im2col(rows, kernel, stride, padding, out_size)


def col2im_reference(cols, shape, kernel, stride, padding):
    """cols [C*Kh*Kw, Ho*Wo*N] -> rows [C, H, W, N], each entry added onto its pixel."""
    return conv.col2im(cols, shape, kernel, stride, padding)


def _conv_args(shape, strides, kernel, stride, padding):
    C, H, W, N = shape
    (Kh, Kw), (Sh, Sw), (Ph, Pw) = kernel, stride, padding
    Ho, Wo = (H + 2 * Ph - Kh) // Sh + 1, (W + 2 * Pw - Kw) // Sw + 1
    return (*map(i32, (C, H, W, N)), *map(i64, strides),
            *map(i32, (Kh, Kw, Sh, Sw, Ph, Pw, Ho, Wo))), C * Kh * Kw, Ho * Wo * N


def im2col_cuda(rows, kernel, stride, padding, out_size):
    xp = get_array_module(rows)
    if any(s < 0 for s in rows.strides):
        rows = xp.ascontiguousarray(rows)
    strides = [s // rows.itemsize for s in rows.strides]          # elements, not bytes
    args, n_rows, n_cols = _conv_args(rows.shape, strides, kernel, stride, padding)
    if n_cols != out_size[0] * out_size[1] * rows.shape[3]:
        raise ValueError(f"im2col: out_size {tuple(out_size)} does not match the image "
                         f"{rows.shape[1:3]}, kernel {kernel}, stride {stride}, padding {padding}")
    cols = xp.empty((n_rows, n_cols), np.float32)
    if cols.size:
        launch("im2col", "im2col", grid_1d(cols.size), (256,), (rows, cols, *args))
    return cols


def col2im_cuda(cols, shape, kernel, stride, padding):
    xp = get_array_module(cols)
    _, H, W, N = shape
    rows = xp.empty(shape, np.float32)
    args, _, _ = _conv_args(shape, (H * W * N, W * N, N, 1), kernel, stride, padding)
    if rows.size:
        launch("im2col", "col2im", grid_1d(rows.size), (256,),
               (xp.ascontiguousarray(cols), rows, *args))
    return rows


def im2col(rows, kernel, stride, padding, out_size):
    if kernels.use("im2col", rows):
        return im2col_cuda(rows, kernel, stride, padding, out_size)
    return im2col_reference(rows, kernel, stride, padding, out_size)


def col2im(cols, shape, kernel, stride, padding):
    if kernels.use("im2col", cols):
        return col2im_cuda(cols, shape, kernel, stride, padding)
    return col2im_reference(cols, shape, kernel, stride, padding)

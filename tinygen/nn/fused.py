"""Fused Functions: composites with a hand-written backward, each for a stated reason.

Each of these could be written as a chain of primitive ops (and `tests/test_fused.py`
checks that it equals that chain). Fusing keeps one graph node instead of many, stores
fewer arrays for backward and avoids temporaries, which is where a NumPy engine loses
time to PyTorch. Shapes use B batch, T time, C channels, nh heads, hs head size.
"""

import math
from typing import ClassVar

from tinygen.autograd import Function
from tinygen.backend import get_array_module, index_add

_ones_cache = {}


def _ones(xp, n, dtype):
    key = (xp.__name__, n, dtype)
    if key not in _ones_cache:
        _ones_cache[key] = xp.ones(n, dtype=dtype)
    return _ones_cache[key]


def sum_last(x):
    """x.sum(axis=-1, keepdims=True), as one matrix-vector product: for rows of a few
    hundred numbers BLAS's gemv is ~5x faster than NumPy's row-by-row reduction."""
    ones = _ones(get_array_module(x), x.shape[-1], x.dtype)
    return (x.reshape(-1, x.shape[-1]) @ ones).reshape(*x.shape[:-1], 1)


def sum_leading(x):
    """x summed over every axis but the last (a bias gradient), as one vector-matrix product."""
    x2 = x.reshape(-1, x.shape[-1])
    return _ones(get_array_module(x), x2.shape[0], x.dtype) @ x2


def outer_or_matmul(a, b):
    """a @ b for 2-D a, b. When the inner size is 1 that is an outer product, for which
    NumPy's matmul takes a slow non-BLAS loop (~15x slower): broadcast a * b instead.
    (The gradient through a GAN discriminator's last layer, Linear(in, 1), is one.)"""
    return a * b if a.shape[1] == 1 else a @ b


class Linear(Function):
    """y = x @ W.T + b. Fused for speed: [..., C] is flattened to one [N, C] BLAS call and
    dW is one [out, N] @ [N, in] product instead of a per-batch product then a sum."""

    def forward(self, x, weight, bias=None):
        if x.shape[-1] != weight.shape[1]:
            raise ValueError(f"input has {x.shape[-1]} features, the weight "
                             f"{tuple(weight.shape)} expects {weight.shape[1]}")
        self.x, self.weight, self.has_bias = x, weight, bias is not None
        out = x.reshape(-1, x.shape[-1]) @ weight.T          # [N, in] @ [in, out] -> [N, out]
        if bias is not None:
            out += bias
        return out.reshape(*x.shape[:-1], weight.shape[0])

    def backward(self, grad):
        x, w = self.x, self.weight
        g2 = grad.reshape(-1, w.shape[0])                     # [N, out]
        gx = None
        if self.needs_input_grad[0]:
            x2 = x.reshape(-1, w.shape[1])
            # gx in the memory order of x: a flattened conv output is batch-last (see
            # conv.py), and elementwise ops between mismatched orders are ~9x slower
            transposed = x2.flags.f_contiguous and not x2.flags.c_contiguous
            gx = outer_or_matmul(w.T, g2.T).T if transposed else outer_or_matmul(g2, w)
            gx = gx.reshape(x.shape)
        gw = g2.T @ x.reshape(-1, w.shape[1]) if self.needs_input_grad[1] else None
        if not self.has_bias:
            return gx, gw
        return gx, gw, sum_leading(g2)


class GELU(Function):
    """GELU, tanh form (GPT-2): 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))).
    Fused for speed and memory: one node keeping x and the tanh instead of eight."""

    K = math.sqrt(2.0 / math.pi)

    def forward(self, x):
        xp = get_array_module(x)
        inner = x * x
        inner *= 0.044715 * self.K
        inner += self.K
        inner *= x                        # √(2/π) (x + 0.044715 x³)
        self.x, self.t = x, xp.tanh(inner, out=inner)
        out = self.t + 1
        out *= x
        out *= 0.5
        return out

    def backward(self, grad):
        x, t = self.x, self.t
        # d/dx = 0.5 (1 + t) + 0.5 x (1 - t²) √(2/π) (1 + 3 · 0.044715 x²)
        dinner = x * x
        dinner *= 3 * 0.044715 * self.K
        dinner += self.K
        sech2 = t * t
        sech2 -= 1
        dinner *= sech2                   # -(1 - t²) · d(inner)/dx
        dinner *= x
        dinner -= t
        dinner -= 1
        dinner *= -0.5 * grad
        return dinner


class LeakyReLU(Function):
    """x where x > 0, else negative_slope · x. Fused for speed: the slope per element,
    1 or negative_slope, is built once with two in-place passes and saved, so forward is
    one multiply and backward is grad times the same array (`xp.where` with scalar
    branches, the obvious way to write it, is ~10x slower in NumPy)."""

    def forward(self, x, negative_slope=0.01):
        scale = (x > 0).astype(x.dtype)
        scale *= 1 - negative_slope
        scale += negative_slope               # 1 where x > 0, negative_slope elsewhere
        self.scale = scale
        return x * scale

    def backward(self, grad):
        return grad * self.scale


class LayerNorm(Function):
    """(x - mean) / sqrt(var + eps) * w + b over the last axis. Fused for speed and memory:
    backward reuses the normalised x and 1/std instead of re-deriving them op by op."""

    def forward(self, x, weight=None, bias=None, eps=1e-5):
        xp = get_array_module(x)
        inv_c = 1.0 / x.shape[-1]
        xhat = x - sum_last(x) * inv_c
        var = sum_last(xhat * xhat)
        var *= inv_c
        var += eps
        rstd = xp.sqrt(var, out=var)
        xp.reciprocal(rstd, out=rstd)
        xhat *= rstd
        self.xhat, self.rstd, self.weight = xhat, rstd, weight
        self.has_bias = bias is not None
        out = xhat * weight if weight is not None else xhat.copy()
        if bias is not None:
            out += bias
        return out

    def backward(self, grad):
        xhat, w = self.xhat, self.weight
        gw = gb = None
        if w is not None and self.needs_input_grad[1]:
            gw = sum_leading(grad * xhat)
        if self.has_bias and self.needs_input_grad[2]:
            gb = sum_leading(grad)
        gxhat = grad * w if w is not None else grad.copy()
        # dx = rstd * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat))
        inv_c = 1.0 / grad.shape[-1]
        proj = sum_last(gxhat * xhat)
        proj *= inv_c
        gx = gxhat
        gx -= sum_last(gxhat) * inv_c
        gx -= xhat * proj
        gx *= self.rstd
        if w is None:
            return gx
        return (gx, gw, gb) if self.has_bias else (gx, gw)


class CrossEntropy(Function):
    """Mean of -log softmax(logits)[target] over targets that are not ignore_index.
    Fused for stability (log-sum-exp, never log of a rounded-to-zero probability) and
    memory (no one-hot matrix). logits [N, V], target [N] integers."""

    def forward(self, logits, target, ignore_index=-100, reduction="mean"):
        xp = get_array_module(logits)
        N = logits.shape[0]
        valid = target != ignore_index
        safe = xp.where(valid, target, 0)
        # bounds: checked by F.cross_entropy (backend.check_index_bounds), without a sync
        logp = logits - logits.max(axis=1, keepdims=True)
        logp -= xp.log(xp.exp(logp).sum(axis=1, keepdims=True))
        picked = logp[xp.arange(N), safe] * valid
        self.logp, self.safe, self.valid, self.reduction = logp, safe, valid, reduction
        # a device scalar on the GPU: no int() sync
        self.count = (xp.maximum(valid.sum(), 1).astype(logits.dtype) if reduction == "mean"
                      else 1)
        if reduction == "none":
            return -picked
        return -picked.sum() / self.count

    def backward(self, grad):
        xp = get_array_module(self.logp)
        g = xp.exp(self.logp)                        # softmax
        g[xp.arange(g.shape[0]), self.safe] -= 1     # softmax - one_hot(target)
        scale = grad[:, None] if self.reduction == "none" else grad / self.count
        g *= self.valid[:, None] * scale
        return g


class Attention(Function):
    """softmax(q kᵀ / √hs + mask) v for q [B, nh, Tq, hs], k and v [B, nh, Tk, hs].
    Fused for memory and speed: keeps only the attention matrix for backward, and the
    causal mask is one cached additive array, not a masked copy per call."""

    _masks: ClassVar[dict] = {}  # (module, Tq, Tk, dtype) -> additive causal mask

    def forward(self, q, k, v, is_causal=False, attn_mask=None, scale=None, dropout=None):
        xp = get_array_module(q)
        self.scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
        att = q @ k.swapaxes(-1, -2)                          # [B, nh, Tq, Tk]
        att *= self.scale
        if is_causal:
            att += self._causal_mask(xp, q.shape[-2], k.shape[-2], att.dtype)
        if attn_mask is not None:
            att += attn_mask
        att -= att.max(axis=-1, keepdims=True)
        xp.exp(att, out=att)
        att /= sum_last(att)
        self.q, self.k, self.v, self.att, self.dropout = q, k, v, att, dropout
        if dropout is not None:                               # mask already scaled by 1/(1-p)
            att = att * dropout
        self.att_used = att
        return att @ v                                        # [B, nh, Tq, hs]

    @classmethod
    def _causal_mask(cls, xp, Tq, Tk, dtype):
        """0 where query i may see key j, -inf after it. With a KV cache the Tq queries are
        the last Tq positions of the Tk keys, so query i sits at position Tk - Tq + i."""
        key = (xp.__name__, Tq, Tk, dtype)
        if key not in cls._masks:
            i = xp.arange(Tq)[:, None] + (Tk - Tq)
            j = xp.arange(Tk)[None, :]
            cls._masks[key] = xp.where(j > i, -xp.inf, 0).astype(dtype)
        return cls._masks[key]

    def backward(self, grad):
        q, k, v, att = self.q, self.k, self.v, self.att
        gv = self.att_used.swapaxes(-1, -2) @ grad            # [B, nh, Tk, hs]
        gatt = grad @ v.swapaxes(-1, -2)                      # [B, nh, Tq, Tk]
        if self.dropout is not None:
            gatt *= self.dropout
        # softmax backward: ds = att * (gatt - sum(gatt * att))
        gatt -= sum_last(gatt * att)
        gatt *= att
        gatt *= self.scale
        gq = gatt @ k                                         # [B, nh, Tq, hs]
        gk = gatt.swapaxes(-1, -2) @ q                        # [B, nh, Tk, hs]
        return gq, gk, gv


class Embedding(Function):
    """weight[idx]. Backward scatter-adds rows (a token seen twice gets both gradients)."""

    def forward(self, weight, idx):
        self.shape, self.dtype, self.idx = weight.shape, weight.dtype, idx
        return weight[idx]

    def backward(self, grad):
        gw = get_array_module(grad).zeros(self.shape, dtype=self.dtype)
        return index_add(gw, self.idx.reshape(-1), grad.reshape(-1, self.shape[1]))


class Dropout(Function):
    """x * mask / (1 - p): the mask is drawn once and reused by backward."""

    def forward(self, x, mask):
        self.mask = mask
        return x * mask

    def backward(self, grad):
        return grad * self.mask

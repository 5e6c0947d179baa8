"""Scaled dot-product attention (Vaswani et al. 2017, eq. 1): softmax(q kᵀ / √hs) v.

Shapes use B batch, nh heads, Tq query and Tk key positions, hs head size."""

import math
from functools import partial
from typing import ClassVar

from tinygen.autograd import Function
from tinygen.backend import get_array_module, row_maxes
from tinygen.blocked import in_row_blocks, row_dots_in_block, row_sums_in_block


class ScaledDotProductAttention(Function):
    """softmax(q kᵀ · scale + mask) v for q [B, nh, Tq, hs], k and v [B, nh, Tk, hs].

    Replaces the composition `((q @ k.transpose(-1, -2)) * scale).masked_fill(~allowed,
    -inf).softmax(-1) @ v`. Fused for memory and speed: keeps only the attention matrix
    for backward (the composition keeps the scores, the mask and the softmax), and the
    causal mask is one cached additive array, not a masked copy per call. `dropout`, when
    given, is a mask on the attention matrix already scaled by 1/(1-p)."""

    _masks: ClassVar[dict] = {}  # (module, Tq, Tk, dtype) -> additive causal mask

    def forward(self, q, k, v, is_causal=False, attn_mask=None, scale=None, dropout=None):
        xp = get_array_module(q)
        self.scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
        att = q @ k.swapaxes(-1, -2)                          # [B, nh, Tq, Tk]
        mask = self._causal_mask(xp, q.shape[-2], k.shape[-2], att.dtype) if is_causal else None
        if attn_mask is not None:
            att *= self.scale
            att += attn_mask
            self._softmax(att, 1.0, None)    # a mask of any broadcast shape: whole arrays
        else:  # softmax(att · scale + mask) over key rows, a block of heads at a time
            in_row_blocks(self._softmax, _heads(att), shared=(self.scale, mask),
                          flatten=False)
        self.q, self.k, self.v, self.att, self.dropout = q, k, v, att, dropout
        if dropout is not None:
            att = att * dropout
        self.att_used = att
        return att @ v                                        # [B, nh, Tq, hs]

    @staticmethod
    def _softmax(att, scale, mask):
        """att <- softmax(att · scale + mask) along the last axis, in place."""
        att *= scale
        if mask is not None:
            att += mask
        att -= row_maxes(att)
        get_array_module(att).exp(att, out=att)
        att /= row_sums_in_block(att)

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

    def backward(self, grad, out=(None, None, None)):
        """gq, gk, gv; written into the arrays of `out` where given (PackedQKVAttention's
        views of one gradient array)."""
        q, k, v, att = self.q, self.k, self.v, self.att
        xp = get_array_module(grad)
        gv = xp.matmul(self.att_used.swapaxes(-1, -2), grad, out=out[2])  # [B, nh, Tk, hs]
        gatt = grad @ v.swapaxes(-1, -2)                      # [B, nh, Tq, Tk]
        rows = [a for a in (gatt, att, self.dropout) if a is not None]
        if any(a.shape != gatt.shape for a in rows):  # a broadcast dropout mask: whole arrays
            self._softmax_backward(self.scale, *rows)
        else:  # a block of heads at a time
            in_row_blocks(partial(self._softmax_backward, self.scale), *map(_heads, rows),
                          flatten=False)
        gq = xp.matmul(gatt, k, out=out[0])                   # [B, nh, Tq, hs]
        gk = xp.matmul(gatt.swapaxes(-1, -2), q, out=out[1])  # [B, nh, Tk, hs]
        return gq, gk, gv

    @staticmethod
    def _softmax_backward(scale, gatt, att, drop=None):
        """gatt <- the gradient of the scores from that of the (dropped-out) softmax, in place:
        ds = att * (gatt - sum(gatt * att)) · scale."""
        if drop is not None:
            gatt *= drop
        gatt -= row_dots_in_block(gatt, att)
        gatt *= att
        gatt *= scale


class PackedQKVAttention(Function):
    """ScaledDotProductAttention over the heads packed in one projection's output:
    qkv [B, T, 3C] (q, k, v side by side, each nh heads of hs = C / nh) -> y [B, T, C],
    the heads re-assembled side by side. (flash-attn's "qkvpacked" form.)

    The same numbers as splitting qkv into q, k, v [B, nh, T, hs], attending, and
    permuting y back, but one node instead of six: q, k and v are strided views of qkv
    here, and backward writes their three gradients into one array shaped like qkv,
    where three GetItem nodes would each fill a zero array as large as qkv and the
    engine would add them up (nanoGPT's CPU config: ~2 ms of a 50 ms step)."""

    def forward(self, qkv, n_head, is_causal=False, dropout=None):
        B, T, C3 = qkv.shape                                   # checked by F.packed_qkv_attention
        q, k, v = _split_heads(qkv, n_head)                    # views [B, nh, T, hs]
        self.attend, self.n_head = ScaledDotProductAttention(), n_head
        y = self.attend.forward(q, k, v, is_causal=is_causal, dropout=dropout)
        return y.swapaxes(1, 2).reshape(B, T, C3 // 3)        # [B, T, nh, hs] -> [B, T, C]

    def backward(self, grad):
        B, T, C = grad.shape
        g = grad.reshape(B, T, self.n_head, C // self.n_head).swapaxes(1, 2)
        gqkv = get_array_module(grad).empty((B, T, 3 * C), grad.dtype)
        self.attend.backward(g, out=_split_heads(gqkv, self.n_head))  # gq, gk, gv in place
        return gqkv


def _split_heads(qkv, n_head):
    """qkv [B, T, 3C] -> q, k, v [B, nh, T, hs]: views, no copies."""
    B, T, C3 = qkv.shape
    heads = qkv.reshape(B, T, 3, n_head, C3 // (3 * n_head)).transpose(2, 0, 3, 1, 4)
    return heads[0], heads[1], heads[2]


def _heads(a):
    """[..., Tq, Tk] -> [heads, Tq, Tk]: the rows in_row_blocks shares out (a view here)."""
    return a.reshape(-1, *a.shape[-2:])

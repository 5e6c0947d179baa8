"""Scaled dot-product attention (Vaswani et al. 2017, eq. 1): softmax(q kᵀ / √hs) v.

Shapes use B batch, nh heads, Tq query and Tk key positions, hs head size."""

import math
from functools import partial
from typing import ClassVar

import numpy as np

from tinygen.autograd import Function
from tinygen.backend import get_array_module, row_maxes
from tinygen.blocked import in_row_blocks, row_dots_in_block, row_sums_in_block
from tinygen.ops import kernel_calls, kernels


class ScaledDotProductAttention(Function):
    """softmax(q kᵀ · scale + mask) v for q [B, nh, Tq, hs], k and v [B, nh, Tk, hs].

    Replaces the composition `((q @ k.transpose(-1, -2)) * scale).masked_fill(~allowed,
    -inf).softmax(-1) @ v`. Fused for memory and speed: keeps only the attention matrix
    for backward (the composition keeps the scores, the mask and the softmax), and the
    causal mask is one cached additive array, not a masked copy per call. `dropout`, when
    given, is a mask on the attention matrix already scaled by 1/(1-p).

    Causal self-attention runs in blocks of queries (`query_blocks`): block r's queries
    see only the keys up to the block's last query, so the scores, softmax and products
    after that key, all masked to zero, are never computed (what flash attention skips
    too): 62-75 % of the work of the whole [Tq, Tk] matrix. On the CPU only; every other
    case (and the GPU) is one block of all queries and all keys."""

    _masks: ClassVar[dict] = {}  # (module, Tq, Tk, dtype) -> additive causal mask

    def forward(self, q, k, v, is_causal=False, attn_mask=None, scale=None, dropout=None):
        xp = get_array_module(q)
        self.scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
        Tq, Tk = q.shape[-2], k.shape[-2]
        split = (xp is np and is_causal and attn_mask is None and Tq == Tk  # CPU only: on a
                 # GPU one batched product beats more, smaller launches
                 and q.shape[:-2] == k.shape[:-2] == v.shape[:-2]
                 and (dropout is None or dropout.shape == q.shape[:-1] + (Tk,)))
        self.blocks = query_blocks(Tq) if split else [(slice(0, Tq), Tk)]
        # attention.cu's scale + causal mask + softmax in one launch, when switched on
        self.kernel = (attn_mask is None and Tk <= kernel_calls.MAX_KEYS
                       and kernels.use("attention_softmax", q, k))
        self.q, self.k, self.v, self.dropout = q, k, v, dropout
        self.att, self.att_used = [], []          # per block: softmax, and it dropped out
        y = None if len(self.blocks) == 1 else xp.empty(v.shape[:-2] + (Tq, v.shape[-1]),
                                                         xp.result_type(q, v))
        for rows, end in self.blocks:
            att = q[..., rows, :] @ k[..., :end, :].swapaxes(-1, -2)   # [B, nh, rows, keys]
            if attn_mask is not None:
                att *= self.scale
                att += attn_mask
                self._softmax(att, 1.0, None)    # a mask of any broadcast shape: whole arrays
            elif self.kernel:
                att = kernel_calls.attention_softmax_forward_cuda(att, self.scale, is_causal)
            else:  # softmax(att · scale + mask) over key rows, a block of heads at a time
                mask = (self._causal_mask(xp, rows.stop - rows.start, end, att.dtype)
                        if is_causal else None)
                in_row_blocks(self._softmax, _heads(att), shared=(self.scale, mask),
                              flatten=False)
            used = att if dropout is None else att * dropout[..., rows, :end]
            self.att.append(att)
            self.att_used.append(used)
            if y is None:                                    # one block: all queries, keys
                return used @ v                              # [B, nh, Tq, hs]
            xp.matmul(used, v[..., :end, :], out=y[..., rows, :])
        return y

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
        the last Tq positions of the Tk keys, so query i sits at position Tk - Tq + i (and
        so does a block of queries ending at key Tk)."""
        key = (xp.__name__, Tq, Tk, dtype)
        if key not in cls._masks:
            i = xp.arange(Tq)[:, None] + (Tk - Tq)
            j = xp.arange(Tk)[None, :]
            cls._masks[key] = xp.where(j > i, -xp.inf, 0).astype(dtype)
        return cls._masks[key]

    def backward(self, grad, out=(None, None, None)):
        """gq, gk, gv; written into the arrays of `out` where given (PackedQKVAttention's
        views of one gradient array). Blocks in reverse: the last sees every key, so it
        writes gk and gv whole; each earlier block adds onto their first `end` keys."""
        q, k, v = self.q, self.k, self.v
        xp = get_array_module(grad)
        if len(self.blocks) > 1:
            out = tuple(xp.empty_like(a) if o is None else o for a, o in zip((q, k, v), out))
        gq, gk, gv = out
        for (rows, end), att, used in reversed(list(zip(self.blocks, self.att,
                                                        self.att_used))):
            g, whole = grad[..., rows, :], end == k.shape[-2] and rows.stop == q.shape[-2]
            if whole:
                gv = xp.matmul(used.swapaxes(-1, -2), g, out=gv)          # [B, nh, Tk, hs]
            else:
                gv[..., :end, :] += used.swapaxes(-1, -2) @ g
            gatt = g @ v[..., :end, :].swapaxes(-1, -2)                  # [B, nh, rows, keys]
            drop = None if self.dropout is None else self.dropout[..., rows, :end]
            blocks = [a for a in (gatt, att, drop) if a is not None]
            if self.kernel:                                  # attention.cu's backward
                if drop is not None:
                    gatt *= drop
                gatt = kernel_calls.attention_softmax_backward(att, gatt, self.scale)
            elif any(a.shape != gatt.shape for a in blocks):  # a broadcast dropout mask
                self._softmax_backward(self.scale, *blocks)
            else:  # a block of heads at a time
                in_row_blocks(partial(self._softmax_backward, self.scale), *map(_heads, blocks),
                              flatten=False)
            if gq is None:                                   # one block, no out given
                gq = xp.matmul(gatt, k)                      # [B, nh, Tq, hs]
            else:
                xp.matmul(gatt, k[..., :end, :], out=gq[..., rows, :])
            if whole:
                gk = xp.matmul(gatt.swapaxes(-1, -2), q[..., rows, :], out=gk)
            else:
                gk[..., :end, :] += gatt.swapaxes(-1, -2) @ q[..., rows, :]
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


def query_blocks(T, min_rows=32, most=4):
    """Causal self-attention's blocks of queries: [(rows, end)], rows a slice of the T
    queries and end = rows.stop, the keys they may see. Up to `most` blocks of at least
    `min_rows` queries each (more, smaller products cost more than the masked part saves:
    at T = 64, 2 blocks of 32 took 2.05 ms forward + backward against 2.24 whole and 2.36
    for 4; at T = 256, 4 blocks 37.9 against 44.5; docs/cpu_speed.md)."""
    n = max(1, min(most, T // min_rows))
    step = -(-T // n)
    return [(slice(i, min(i + step, T)), min(i + step, T)) for i in range(0, T, step)]


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

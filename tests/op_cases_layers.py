"""Harness cases (tests/harness.py) for the fused layers of tinygen.ops: layer norm, batch
norm, cross-entropy, attention, embedding and dropout, each against its formula written with
other ops (moved out of op_cases.py, whose table includes them in the same place)."""

import math
from functools import partial

import numpy as np
from harness import Case
from hypothesis import strategies as st

import tinygen as tg
import tinygen.nn.functional as F


# ---- the cases -----------------------------------------------------------------------
def layer_norm_case(env, affine):
    shape = [env.size() for _ in range(env.size(0, 2))] + [env.size(2, 5)]
    C, eps = shape[-1], 1e-5
    leaves = [env.leaf(*shape)] + [env.leaf(C) for _ in range({"wb": 2, "w": 1, "": 0}[affine])]

    def fn(x, w=None, b=None):
        return F.layer_norm(x, (C,), w, b, eps)

    def composed(x, w=None, b=None):
        out = (x - x.mean(-1, keepdims=True)) / (x.var(-1, keepdims=True) + eps).sqrt()
        out = out if w is None else out * w
        return out if b is None else out + b

    return leaves, fn, composed


def batch_norm_case(env):
    ndim = env.size(2, 4, name="ndim")
    shape = [env.size(2, 4), env.size(1, 3)] + [env.size(1, 3) for _ in range(ndim - 2)]
    affine = env.draw(st.sampled_from(["weight-bias", "weight", "none"]), "affine")
    training = env.draw(st.booleans(), "training")
    C, eps = shape[1], 1e-5
    stats = (env.normal(C), np.abs(env.normal(C)) + 0.5)
    leaves = [env.leaf(*shape, scale=2.0)] + [
        env.leaf(C) for _ in range({"weight-bias": 2, "weight": 1, "none": 0}[affine])]

    def fn(x, w=None, b=None):  # fresh running statistics on every call
        rm, rv = (tg.tensor(env.const(s.copy())) for s in stats)
        return F.batch_norm(x, rm, rv, w, b, training=training, eps=eps)

    def composed(x, w=None, b=None):
        axes = (0, *range(2, x.ndim))                      # everything but the channel axis
        bshape = (1, C) + (1,) * (x.ndim - 2)              # [C] broadcast over [N, C, ...]
        if training:
            mean, var = x.mean(axes, keepdims=True), x.var(axes, keepdims=True)
        else:
            mean, var = (tg.tensor(env.const(s.reshape(bshape))) for s in stats)
        out = (x - mean) / (var + eps).sqrt()
        out = out if w is None else out * w.reshape(bshape)
        return out if b is None else out + b.reshape(bshape)

    return leaves, fn, composed


def cross_entropy_case(env, reduction, ndim, weighted=False, smoothing=0.0):
    lead = tuple(env.size() for _ in range(ndim - 1))
    V = env.size(2, 5) if ndim == 2 else env.size(5, 6)  # [a, b, V] with b != V: unambiguous
    target = env.ints(0, V, lead)
    target[env.rng().random(lead) < 0.3] = -1  # some entries are ignored
    target.reshape(-1)[0] = V - 1              # and at least one is not
    valid = target != -1
    N = target.size
    weight = np.abs(env.normal(V)) + 0.5 if weighted else np.ones(V)

    def fn(logits):  # classes last: logits [..., V], targets [...]
        return F.cross_entropy(logits, env.const(target), ignore_index=-1, reduction=reduction,
                               weight=env.const(weight) if weighted else None,
                               label_smoothing=smoothing)

    def composed(logits):
        logp = logits.reshape(N, V).log_softmax(-1)
        picked = logp[env.const(np.arange(N)), env.const(np.where(valid, target, 0).ravel())]
        wy = env.const(np.where(valid, weight[np.where(valid, target, 0)], 0).ravel())
        losses = -picked * wy * (1 - smoothing)
        if smoothing:
            smooth = -(logp * tg.tensor(env.const(weight))).sum(-1)
            losses = losses + smooth * env.const(valid.ravel() * (smoothing / V))
        if reduction == "none":
            return losses.reshape(lead)
        return losses.sum() / (float(wy.sum()) if reduction == "mean" else 1)

    return [env.leaf(*lead, V, scale=2.0)], fn, composed


def attention_case(env, causal=False, kv_cache=False, mask=None, scale=None, dropout_p=0.0):
    B, nh, Tk, hs = env.size(1, 2), env.size(1, 2), env.size(1, 4), env.size(1, 3)
    Tq = env.size(1, Tk) if kv_cache else Tk
    leaves = [env.leaf(B, nh, Tq, hs), env.leaf(B, nh, Tk, hs), env.leaf(B, nh, Tk, hs)]
    allowed = np.ones((Tq, Tk), dtype=bool)
    if causal:  # query i sits at position Tk - Tq + i and sees keys up to there
        allowed &= np.arange(Tk)[None, :] <= np.arange(Tq)[:, None] + (Tk - Tq)
    attn_mask = additive = None
    if mask == "bool":
        keep = env.rng().random((B, 1, Tq, Tk)) < 0.7
        keep[..., 0] = True  # every query sees at least one key
        allowed = allowed & keep
        # one combined mask (causal and kept): PyTorch refuses is_causal with attn_mask
        attn_mask = tg.tensor(env.const(allowed))  # a Tensor mask works as well as an array
    elif mask == "float":
        attn_mask = additive = env.const(env.normal((Tq, Tk)))

    seed = env.draw(st.integers(0, 2**16))
    if dropout_p:  # the dropout mask that `fn` will draw, scaled by 1/(1-p)
        tg.manual_seed(seed)
        ones = tg.ones(B, nh, Tq, Tk, dtype=env.dtype, device=env.device)
        keep_att = tg.tensor(F.dropout(ones, dropout_p).data)

    def fn(q, k, v):
        tg.manual_seed(seed)  # the same dropout mask on every call
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                              is_causal=causal and attn_mask is None,
                                              scale=scale, dropout_p=dropout_p)

    def composed(q, k, v):
        att = (q @ k.transpose(-1, -2)) * (1 / math.sqrt(hs) if scale is None else scale)
        if additive is not None:
            att = att + tg.tensor(additive)
        att = att.masked_fill(env.const(~allowed), float("-inf")).softmax(-1)
        return (att * keep_att if dropout_p else att) @ v

    return leaves, fn, composed


def packed_qkv_attention_case(env, causal=False, dropout_p=0.0):
    """F.packed_qkv_attention against splitting qkv, attention written out, merging."""
    B, T, nh, hs = env.size(1, 2), env.size(1, 4), env.size(1, 2), env.size(1, 3)
    seed = env.draw(st.integers(0, 2**16))
    if dropout_p:  # the mask that `fn` draws, scaled by 1/(1-p)
        tg.manual_seed(seed)
        keep_att = tg.tensor(F.dropout(tg.ones(B, nh, T, T, dtype=env.dtype,
                                               device=env.device), dropout_p).data)
    allowed = np.tril(np.ones((T, T), dtype=bool)) if causal else np.ones((T, T), bool)

    def fn(qkv):
        tg.manual_seed(seed)
        return F.packed_qkv_attention(qkv, nh, dropout_p, is_causal=causal)

    def composed(qkv):
        q, k, v = qkv.reshape(B, T, 3, nh, hs).permute(2, 0, 3, 1, 4).unbind(0)
        att = (q @ k.transpose(-1, -2)) * (1 / math.sqrt(hs))
        att = att.masked_fill(env.const(~allowed), float("-inf")).softmax(-1)
        y = (att * keep_att if dropout_p else att) @ v                # [B, nh, T, hs]
        return y.permute(0, 2, 1, 3).reshape(B, T, nh * hs)

    return [env.leaf(B, T, 3 * nh * hs)], fn, composed


def embedding_case(env):
    V, C = env.size(1, 5), env.size(1, 3)
    idx = env.ints(0, V, (env.size(1, 2), V + 1))  # more lookups than rows: repeats
    one_hot = np.eye(V)[idx]                          # [B, T, V]

    def fn(w):
        return F.embedding(env.const(idx), w)

    def composed(w):
        return tg.tensor(env.const(one_hot)) @ w      # [B, T, V] @ [V, C] -> [B, T, C]

    return [env.leaf(V, C)], fn, composed


def dropout_case(env):
    p = env.draw(st.sampled_from([0.1, 0.5, 0.8]))
    seed = env.draw(st.integers(0, 2**16))
    x = env.leaf(env.size(1, 3), env.size(1, 6), min_abs=0.1)

    def fn(x):
        tg.manual_seed(seed)  # the same mask on every call, so gradcheck can perturb x
        return F.dropout(x, p, training=True)

    tg.manual_seed(seed)
    ones = tg.ones(*x.shape, dtype=x.dtype, device=x.device)
    mask = F.dropout(ones, p, training=True).data  # the mask that `fn` will draw

    def composed(x):
        return x * tg.tensor(mask)

    return [x], fn, composed


LAYER_CASES = [
    # normalisation (ops/normalization.py)
    Case("layer_norm-weight-bias", partial(layer_norm_case, affine="wb")),
    Case("layer_norm-weight", partial(layer_norm_case, affine="w")),
    Case("layer_norm-plain", partial(layer_norm_case, affine="")),
    Case("batch_norm", batch_norm_case, rtol=1e-5,
         examples=[{"ndim": 4, "affine": "weight-bias", "training": True},
                   {"ndim": 2, "affine": "weight", "training": False}]),
    # losses (ops/loss.py)
    *[Case(f"cross_entropy-{r}-{n}d", partial(cross_entropy_case, reduction=r, ndim=n))
      for r in ("mean", "sum", "none") for n in (2, 3)],
    *[Case(f"cross_entropy-{r}-weight-smoothing", partial(
        cross_entropy_case, reduction=r, ndim=2, weighted=True, smoothing=0.2))
      for r in ("mean", "none")],
    Case("cross_entropy-mean-smoothing", partial(cross_entropy_case, reduction="mean", ndim=3,
                                                 smoothing=0.1)),
    Case("cross_entropy-sum-weight", partial(cross_entropy_case, reduction="sum", ndim=2,
                                             weighted=True)),
    # attention (ops/attention.py)
    Case("attention", attention_case),
    Case("attention-causal", partial(attention_case, causal=True)),
    Case("attention-causal-kv_cache", partial(attention_case, causal=True, kv_cache=True)),
    Case("attention-bool_mask", partial(attention_case, mask="bool")),
    Case("attention-causal-bool_mask", partial(attention_case, causal=True, kv_cache=True,
                                               mask="bool")),
    Case("attention-float_mask", partial(attention_case, mask="float", kv_cache=True)),
    Case("attention-scale", partial(attention_case, causal=True, scale=0.3)),
    Case("attention-dropout", partial(attention_case, causal=True, dropout_p=0.3),
         float32_vs_composed=True),
    Case("packed_qkv_attention", packed_qkv_attention_case),
    Case("packed_qkv_attention-causal", partial(packed_qkv_attention_case, causal=True)),
    Case("packed_qkv_attention-causal-dropout", partial(packed_qkv_attention_case, causal=True,
                                                        dropout_p=0.3),
         float32_vs_composed=True),
    # embedding, dropout (ops/embedding.py, ops/dropout.py)
    Case("embedding", embedding_case),
    Case("dropout", dropout_case, float32_vs_composed=True),
]

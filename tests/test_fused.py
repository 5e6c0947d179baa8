"""The functions of tinygen.nn.functional, fused or composed.

Every function here is checked four ways, from one table of cases:
  (a) its gradient against float64 central differences (tg.gradcheck),
  (b) its output AND input gradients against the same function written as a chain of
      primitive Tensor ops (for the fused ones: the composition it replaces),
  (c) float32 in gives float32 out and float32 gradients, close to the float64 answer,
  (d) the same result on every backend present (CuPy only where there is a GPU).
(The numerical-stability checks, per-function specifics and bad-input errors are in
test_fused_specifics.py.)
Shapes are drawn by hypothesis and kept small: gradcheck runs two forwards per element.
"""

import math
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygen as tg
import tinygen.nn.functional as F
from tinygen.backend import to_device

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not tg.cuda_available(), reason="no GPU"))]

SLOPE = 0.01  # leaky_relu's negative slope


# ---- building inputs ----------------------------------------------------------------------
class Env:
    """Draws a case's sizes and data, and makes its tensors on one dtype and device.

    Everything random comes from `draw` (hypothesis), and arrays are generated from drawn
    seeds, so `replay` rebuilds exactly the same case in another dtype or on another device.
    """

    def __init__(self, draw, dtype=np.float64, device="cpu"):
        self._draw, self.dtype, self.device = draw, dtype, device
        self.drawn = []

    def draw(self, strategy):
        value = self._draw(strategy)
        self.drawn.append(value)
        return value

    def size(self, lo=1, hi=4):
        return self.draw(st.integers(lo, hi))

    def rng(self):
        return np.random.default_rng(self.draw(st.integers(0, 2**32 - 1)))

    def normal(self, shape, scale=1.0, min_abs=0.0):
        """float64 N(0, scale²) data; with min_abs, every |x| >= min_abs (away from kinks)."""
        a = self.rng().standard_normal(shape) * scale
        return np.where(a < 0, -1, 1) * (np.abs(a) + min_abs)

    def leaf(self, *shape, scale=1.0, min_abs=0.0):
        """A tensor that requires grad, on this env's dtype and device."""
        data = self.normal(shape, scale, min_abs).astype(self.dtype)
        return tg.tensor(data, device=self.device, requires_grad=True)

    def ints(self, lo, hi, shape):
        return self.rng().integers(lo, hi, size=shape)

    def const(self, array):
        """A NumPy array moved to this env's device (floats cast to its dtype)."""
        array = np.asarray(array)
        if array.dtype.kind == "f":
            array = array.astype(self.dtype)
        return to_device(array, self.device)


def replay(env, dtype=np.float64, device="cpu"):
    drawn = iter(env.drawn)
    return Env(lambda strategy: next(drawn), dtype=dtype, device=device)


# ---- the cases: each returns (leaves, fused, composed) ------------------------------------
# `fused` is the library function; `composed` the same maths from primitive Tensor ops.
# Both take the leaves positionally; constants (targets, masks) are bound in the closures.

def linear_case(env, bias, ndim):
    lead = [env.size() for _ in range(ndim - 1)]
    c_in, c_out = env.size(), env.size()
    leaves = [env.leaf(*lead, c_in), env.leaf(c_out, c_in)]
    if bias:
        leaves.append(env.leaf(c_out))

    def composed(x, w, b=None):
        out = x @ w.transpose(-1, -2)
        return out if b is None else out + b

    return leaves, F.linear, composed


def gelu_case(env):
    x = env.leaf(*[env.size() for _ in range(env.size(1, 3))], scale=2.0)

    def composed(x):
        return 0.5 * x * (1 + (math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)).tanh())

    return [x], F.gelu, composed


def layer_norm_case(env, affine):
    shape = [env.size() for _ in range(env.size(0, 2))] + [env.size(2, 5)]
    C, eps = shape[-1], 1e-5
    leaves = [env.leaf(*shape)] + [env.leaf(C) for _ in range({"wb": 2, "w": 1, "": 0}[affine])]

    def fused(x, w=None, b=None):
        return F.layer_norm(x, (C,), w, b, eps)

    def composed(x, w=None, b=None):
        out = (x - x.mean(-1, keepdims=True)) / (x.var(-1, keepdims=True) + eps).sqrt()
        out = out if w is None else out * w
        return out if b is None else out + b

    return leaves, fused, composed


def cross_entropy_case(env, reduction, ndim):
    lead = tuple(env.size() for _ in range(ndim - 1))
    V = env.size(2, 5)
    target = env.ints(0, V, lead)
    target[env.rng().random(lead) < 0.3] = -1  # some entries are ignored
    target.reshape(-1)[0] = V - 1              # and at least one is not
    valid = target != -1
    N = target.size

    def fused(logits):
        return F.cross_entropy(logits, env.const(target), ignore_index=-1, reduction=reduction)

    def composed(logits):
        logp = logits.reshape(N, V).log_softmax(-1)
        picked = logp[env.const(np.arange(N)), env.const(np.where(valid, target, 0).ravel())]
        losses = -picked * env.const(valid.ravel().astype(np.float64))
        if reduction == "none":
            return losses.reshape(lead)
        return losses.sum() / (int(valid.sum()) if reduction == "mean" else 1)

    return [env.leaf(*lead, V, scale=2.0)], fused, composed


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
        # a Tensor mask works as well as an array; with causal, the mask holds the causal
        # part too (PyTorch refuses is_causal=True together with attn_mask)
        attn_mask = tg.tensor(env.const(allowed if causal else keep))
    elif mask == "float":
        attn_mask = additive = env.const(env.normal((Tq, Tk)))

    seed = env.draw(st.integers(0, 2**16))
    if dropout_p:  # the dropout mask that `fused` will draw, scaled by 1/(1-p)
        tg.manual_seed(seed)
        ones = tg.ones(B, nh, Tq, Tk, dtype=env.dtype, device=env.device)
        keep_att = tg.tensor(F.dropout(ones, dropout_p).data)

    def fused(q, k, v):
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

    return leaves, fused, composed


def softmax_case(env, log):
    ndim = env.size(1, 3)
    x = env.leaf(*[env.size() for _ in range(ndim)], scale=2.0)
    axis = env.draw(st.integers(-ndim, ndim - 1))

    def fused(x):
        return F.log_softmax(x, axis=axis) if log else F.softmax(x, axis=axis)

    def composed(x):
        shifted = x - x.max(axis, keepdims=True).detach()
        if log:
            return shifted - shifted.exp().sum(axis, keepdims=True).log()
        e = shifted.exp()
        return e / e.sum(axis, keepdims=True)

    return [x], fused, composed


def embedding_case(env):
    V, C = env.size(1, 5), env.size(1, 3)
    idx = env.ints(0, V, (env.size(1, 2), V + 1))  # more lookups than rows: repeats
    one_hot = np.eye(V)[idx]                          # [B, T, V]

    def fused(w):
        return F.embedding(env.const(idx), w)

    def composed(w):
        return tg.tensor(env.const(one_hot)) @ w      # [B, T, V] @ [V, C] -> [B, T, C]

    return [env.leaf(V, C)], fused, composed


def dropout_case(env):
    p = env.draw(st.sampled_from([0.1, 0.5, 0.8]))
    seed = env.draw(st.integers(0, 2**16))
    x = env.leaf(env.size(1, 3), env.size(1, 6), min_abs=0.1)

    def fused(x):
        tg.manual_seed(seed)  # the same mask on every call, so gradcheck can perturb x
        return F.dropout(x, p, training=True)

    tg.manual_seed(seed)
    ones = tg.ones(*x.shape, dtype=x.dtype, device=x.device)
    mask = F.dropout(ones, p, training=True).data  # the mask that `fused` will draw

    def composed(x):
        return x * tg.tensor(mask)

    return [x], fused, composed


def mse_case(env):
    shape = [env.size() for _ in range(env.size(1, 2))]
    return ([env.leaf(*shape), env.leaf(*shape)], F.mse_loss,
            lambda x, y: ((x - y) ** 2).mean())


def bce_case(env):
    shape = [env.size() for _ in range(env.size(1, 2))]
    logits = env.leaf(*shape, scale=3.0)
    target = tg.tensor(env.const(env.rng().random(shape)), requires_grad=True)

    def composed(x, y):  # the naive formula, fine at moderate logits
        return -(y * x.sigmoid().log() + (1 - y) * (1 - x.sigmoid()).log()).mean()

    return [logits, target], F.binary_cross_entropy_with_logits, composed


def leaky_relu_case(env, slope=SLOPE):
    x = env.leaf(*[env.size() for _ in range(env.size(1, 4))], min_abs=0.1)
    return ([x], lambda x: F.leaky_relu(x, slope),
            lambda x: tg.where(x.data > 0, x, x * slope))


def nll_case(env):
    N, V = env.size(), env.size(2, 5)
    target = env.ints(0, V, (N,))

    def fused(logits):
        return F.nll_loss(logits.log_softmax(-1), env.const(target))

    def composed(logits):  # nll of log_softmax is cross-entropy
        return F.cross_entropy(logits, env.const(target))

    return [env.leaf(N, V)], fused, composed


CASES = {
    "linear-bias-2d": partial(linear_case, bias=True, ndim=2),
    "linear-nobias-2d": partial(linear_case, bias=False, ndim=2),
    "linear-bias-3d": partial(linear_case, bias=True, ndim=3),
    "linear-nobias-3d": partial(linear_case, bias=False, ndim=3),
    "gelu": gelu_case,
    "layer_norm-weight-bias": partial(layer_norm_case, affine="wb"),
    "layer_norm-weight": partial(layer_norm_case, affine="w"),
    "layer_norm-plain": partial(layer_norm_case, affine=""),
    **{f"cross_entropy-{r}-{n}d": partial(cross_entropy_case, reduction=r, ndim=n)
       for r in ("mean", "sum", "none") for n in (2, 3)},
    "attention": attention_case,
    "attention-causal": partial(attention_case, causal=True),
    "attention-causal-kv_cache": partial(attention_case, causal=True, kv_cache=True),
    "attention-bool_mask": partial(attention_case, mask="bool"),
    "attention-causal-bool_mask": partial(attention_case, causal=True, kv_cache=True,
                                          mask="bool"),
    "attention-float_mask": partial(attention_case, mask="float", kv_cache=True),
    "attention-scale": partial(attention_case, causal=True, scale=0.3),
    "attention-dropout": partial(attention_case, causal=True, dropout_p=0.3),
    "softmax": partial(softmax_case, log=False),
    "log_softmax": partial(softmax_case, log=True),
    "embedding": embedding_case,
    "dropout": dropout_case,
    "mse_loss": mse_case,
    "binary_cross_entropy_with_logits": bce_case,
    "leaky_relu": leaky_relu_case,
    "leaky_relu-0.2": partial(leaky_relu_case, slope=0.2),   # DCGAN's discriminator
    "leaky_relu-0": partial(leaky_relu_case, slope=0.0),     # plain ReLU
    "leaky_relu-1.5": partial(leaky_relu_case, slope=1.5),   # any slope, not just < 1
    "nll_loss": nll_case,
}


def run(fn, leaves, seed=0):
    """fn's output and the gradients of sum(out * w) for fixed random weights w."""
    for t in leaves:
        t.grad = None
    out = fn(*leaves)
    w = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
    (out * tg.tensor(to_device(w, out.device))).sum().backward()
    grads = [np.zeros(t.shape) if t.grad is None else t.grad.numpy() for t in leaves]
    return out, grads


# ---- (a) gradients against central differences ---------------------------------------------
@pytest.mark.parametrize("name", list(CASES))
@settings(deadline=None)
@given(data=st.data())
def test_gradcheck(name, data):
    leaves, fused, _ = CASES[name](Env(data.draw))
    assert tg.gradcheck(fused, leaves)
    for t in leaves:  # gradcheck's comparison lets a NaN gradient through; catch it here
        assert t.grad is None or np.isfinite(t.grad.numpy()).all()


# ---- (b) fused == composition, forward and backward ---------------------------------------
@pytest.mark.parametrize("name", list(CASES))
@settings(deadline=None)
@given(data=st.data())
def test_equals_composition(name, data):
    leaves, fused, composed = CASES[name](Env(data.draw))
    out, grads = run(fused, leaves)
    want, want_grads = run(composed, leaves)
    assert out.shape == want.shape
    np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=1e-9, atol=1e-12)
    for g, want_g in zip(grads, want_grads):
        np.testing.assert_allclose(g, want_g, rtol=1e-9, atol=1e-12)


# ---- (c) float32 stays float32 --------------------------------------------------------------
@pytest.mark.parametrize("name", list(CASES))
@settings(deadline=None)
@given(data=st.data())
def test_float32_in_float32_out(name, data):
    env64 = Env(data.draw)
    leaves64, fused, _ = CASES[name](env64)
    want, want_grads = run(fused, leaves64)
    leaves, fused, composed = CASES[name](replay(env64, dtype=np.float32))
    out, grads = run(fused, leaves)
    assert out.dtype == np.float32, f"{name} returned {out.dtype}"
    for t in leaves:
        assert t.grad is None or t.grad.dtype == np.float32, f"{name}: grad {t.grad.dtype}"
    if "dropout" in name:  # a float32 mask comes from a different stream than a float64 one
        want, want_grads = run(composed, leaves)
    # float32 keeps ~7 digits; layer_norm's gradient loses a few more when a row's spread
    # is small (it scales with 1/std), so the tolerance is on the scale of the largest entry
    np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)
    for g, want_g in zip(grads, want_grads):
        np.testing.assert_allclose(g, want_g, rtol=1e-3, atol=1e-4 * max(1, np.abs(want_g).max()))


# ---- (d) every backend gives the same answer ----------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(CASES))
@settings(deadline=None, max_examples=5)
@given(data=st.data())
def test_same_on_every_device(name, device, data):
    env = Env(data.draw)
    leaves, fused, _ = CASES[name](env)
    want, want_grads = run(fused, leaves)
    leaves, fused, _ = CASES[name](replay(env, device=device))
    out, grads = run(fused, leaves)
    assert out.device == device and all(t.grad.device == device for t in leaves)
    np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=1e-9, atol=1e-12)
    for g, want_g in zip(grads, want_grads):
        np.testing.assert_allclose(g, want_g, rtol=1e-9, atol=1e-12)

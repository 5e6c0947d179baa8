"""The reference array code beside each CUDA kernel (ops/kernel_calls.py,
optim/adam_kernel.py) computes what the library's own ops compute. These references are
what tests/test_cuda_kernels.py holds the kernels to on a GPU, so they are checked here,
on the CPU, against the public API (F.*, optim.AdamW), in float64."""

import numpy as np
import pytest

import tinygen as tg
import tinygen.nn.functional as F
from tinygen import nn, optim
from tinygen.ops import kernel_calls as kc
from tinygen.ops import kernels
from tinygen.optim import adam_kernel

RNG = np.random.default_rng(0)


def _t(a):
    return tg.tensor(a, requires_grad=True)


@pytest.mark.parametrize("shape", [(5, 37), (2, 3, 64), (1, 1)])
def test_layer_norm_reference(shape):
    x, g = RNG.normal(size=shape) * 3 + 1, RNG.normal(size=shape)
    w, b = RNG.normal(size=shape[-1:]), RNG.normal(size=shape[-1:])
    tx, tw, tb = _t(x), _t(w), _t(b)
    y = F.layer_norm(tx, shape[-1:], tw, tb, eps=1e-5)
    y.backward(tg.tensor(g))
    out, mean, rstd = kc.layer_norm_forward_reference(x, w, b, 1e-5)
    assert mean.shape == rstd.shape == shape[:-1]
    np.testing.assert_allclose(out, y.data, rtol=1e-10, atol=1e-12)
    gx, gw, gb = kc.layer_norm_backward_reference(g, x, mean, rstd, w, has_bias=True)
    for mine, theirs in ((gx, tx), (gw, tw), (gb, tb)):
        np.testing.assert_allclose(mine, theirs.grad.data, rtol=1e-9, atol=1e-12)
    gx0, gw0, gb0 = kc.layer_norm_backward_reference(g, x, mean, rstd)   # no affine
    assert gw0 is None and gb0 is None and gx0.shape == shape


def test_gelu_references():
    x, g, b = RNG.normal(size=(6, 10)) * 3, RNG.normal(size=(6, 10)), RNG.normal(size=10)
    tx, tb = _t(x), _t(b)
    y = F.gelu(tx + tb, approximate="tanh")
    y.backward(tg.tensor(g))
    # atol: GELUFunction computes x σ(2z), the reference 0.5 x (1 + tanh z); in the far
    # negative tail (|GELU| < 1e-10) 1 + tanh z cancels, so the two differ there by ~1e-16
    np.testing.assert_allclose(kc.bias_gelu_forward_reference(x, b), y.data, rtol=1e-12,
                               atol=1e-14)
    gx, gb = kc.bias_gelu_backward_reference(x, b, g)
    np.testing.assert_allclose(gx, tx.grad.data, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gb, tb.grad.data, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(kc.gelu_forward_reference(x),
                               F.gelu(tg.tensor(x), approximate="tanh").data, rtol=1e-12,
                               atol=1e-14)


@pytest.mark.parametrize("Tq,Tk", [(7, 7), (3, 9)])   # (3, 9): the last 3 of 9 (KV cache)
def test_attention_softmax_reference(Tq, Tk):
    """softmax(scale q kᵀ + mask) v through the reference equals F.sdpa, both directions."""
    q, k, v = (RNG.normal(size=(2, 3, T, 8)) for T in (Tq, Tk, Tk))
    g = RNG.normal(size=(2, 3, Tq, 8))
    tq, tk, tv = _t(q), _t(k), _t(v)
    y = F.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
    y.backward(tg.tensor(g))
    scale = 1 / np.sqrt(8)
    att = kc.attention_softmax_forward_reference(q @ k.swapaxes(-1, -2), scale, causal=True)
    np.testing.assert_allclose(att @ v, y.data, rtol=1e-10, atol=1e-12)
    gs = kc.attention_softmax_backward_reference(att, g @ v.swapaxes(-1, -2), scale)
    np.testing.assert_allclose(gs @ k, tq.grad.data, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gs.swapaxes(-1, -2) @ q, tk.grad.data, rtol=1e-9, atol=1e-12)


def test_cross_entropy_reference():
    logits, target = RNG.normal(size=(9, 11)) * 4, RNG.integers(0, 11, size=9)
    target[[2, 5]] = -100
    t = _t(logits)
    loss = F.cross_entropy(t, tg.tensor(target), ignore_index=-100)
    loss.backward()
    per_row, dlogits = kc.cross_entropy_forward_backward_reference(logits, target, -100)
    assert per_row[2] == 0 and not dlogits[5].any()
    np.testing.assert_allclose(per_row.sum() / 7, loss.data, rtol=1e-12)
    np.testing.assert_allclose(dlogits / 7, t.grad.data, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("decoupled", [True, False])
def test_adam_reference_matches_optim(decoupled):
    """Three steps over one flat buffer with a decay flag per element equal optim's Adam or
    AdamW with two parameter groups (decayed, exempt)."""
    a, b = nn.Parameter(tg.tensor(RNG.normal(size=(4, 5)))), nn.Parameter(
        tg.tensor(RNG.normal(size=7)))
    flat = np.concatenate([a.data.ravel(), b.data.ravel()])
    decay = np.r_[np.ones(20, np.uint8), np.zeros(7, np.uint8)]
    m, v = np.zeros_like(flat), np.zeros_like(flat)
    cls = optim.AdamW if decoupled else optim.Adam
    opt = cls([{"params": [a], "weight_decay": 0.1}, {"params": [b], "weight_decay": 0.0}],
              lr=0.01, betas=(0.8, 0.9), eps=1e-6)
    for step in range(1, 4):
        ga, gb = RNG.normal(size=(4, 5)), RNG.normal(size=7)
        a.grad, b.grad = tg.tensor(ga), tg.tensor(gb)
        opt.step()
        adam_kernel.adam_step(flat, np.r_[ga.ravel(), gb], m, v, step, lr=0.01,
                              betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1,
                              decoupled=decoupled, decay=decay)
    np.testing.assert_allclose(flat, np.r_[a.data.ravel(), b.data], rtol=1e-12, atol=1e-14)


def test_dispatch_takes_the_reference_on_the_cpu_even_when_switched_on():
    x = RNG.normal(size=(3, 8)).astype(np.float32)
    before = {n for n in kernels.KERNELS if kernels.enabled(n)}
    try:
        kernels.enable()
        np.testing.assert_array_equal(kc.gelu_forward(x), kc.gelu_forward_reference(x))
        np.testing.assert_array_equal(kc.dropout_apply(x, 0.5, seed=1, offset=0),
                                      kc.dropout_apply_reference(x, 0.5, 1, 0))
        out, _, _ = kc.layer_norm_forward(x)
        np.testing.assert_array_equal(out, kc.layer_norm_forward_reference(x)[0])
    finally:
        kernels.disable()
        kernels.enable(before)


def test_im2col_reference_reads_a_batch_first_view():
    """The conv references accept [C, H, W, N] views of NCHW images, as the kernel does."""
    x = RNG.normal(size=(2, 3, 5, 6))
    cols = kc.im2col_reference(x.transpose(1, 2, 3, 0), (3, 2), (2, 1), (1, 0), (3, 5))
    direct = kc.im2col_reference(np.ascontiguousarray(x.transpose(1, 2, 3, 0)),
                                 (3, 2), (2, 1), (1, 0), (3, 5))
    np.testing.assert_array_equal(cols, direct)
    assert cols.shape == (3 * 3 * 2, 3 * 5 * 2)

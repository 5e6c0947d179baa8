"""The functions of tinygen.nn.functional, one at a time: numerical stability at extreme
inputs, what dropout, embedding and attention must do beyond their gradients, leaky_relu
against PyTorch, and clear errors for bad input. (The table-driven checks of every
function's gradients are the harness: tests/harness.py, tests/op_cases.py.)"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygen as tg
import tinygen.nn.functional as F
from tinygen.tensor import Tensor


# ---- numerical stability ------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_stable_at_huge_logits(dtype):
    logits = tg.tensor(np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], dtype=dtype),
                       requires_grad=True)
    loss = F.cross_entropy(logits, np.array([1, 0]), reduction="none")
    # -log softmax: row 0 misses by 2e4; row 1 by 2e4 + log 2 (two equal winners)
    np.testing.assert_allclose(loss.numpy(), [2e4, 2e4 + math.log(2)], rtol=1e-6)
    loss.sum().backward()
    assert np.isfinite(logits.grad.numpy()).all()
    np.testing.assert_allclose(logits.grad.numpy(), [[1, -1, 0], [-1, 0.5, 0.5]], atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_softmax_stable_at_huge_logits(dtype):
    x = tg.tensor(np.array([[1e4, -1e4, 1e4 - 1.0]], dtype=dtype), requires_grad=True)
    out = F.log_softmax(x, axis=-1)
    lse = math.log(1 + math.exp(-1.0))
    np.testing.assert_allclose(out.numpy(), [[-lse, -2e4 - lse, -1 - lse]], rtol=1e-6)
    out.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()
    assert np.isfinite(F.softmax(x * 10, axis=-1).numpy()).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_cross_entropy_with_logits_stable(dtype):
    x = tg.tensor(np.array([100.0, -100.0, 100.0, -100.0], dtype=dtype), requires_grad=True)
    y = tg.tensor(np.array([1.0, 0.0, 0.0, 1.0], dtype=dtype))
    loss = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    np.testing.assert_allclose(loss.numpy(), [0, 0, 100, 100], atol=1e-6)
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0, 0, 1, -1], atol=1e-6)


def test_cross_entropy_ignores_ignore_index():
    logits = tg.tensor(np.random.default_rng(0).standard_normal((4, 3)), requires_grad=True)
    loss = F.cross_entropy(logits, np.array([0, -100, 2, -100]))  # PyTorch's default index
    want = F.cross_entropy(logits[np.array([0, 2])], np.array([0, 2]))
    np.testing.assert_allclose(loss.item(), want.item(), rtol=1e-12)
    loss.backward()
    np.testing.assert_array_equal(logits.grad.numpy()[[1, 3]], 0)
    np.testing.assert_allclose(logits.grad.numpy().sum(axis=1), 0, atol=1e-12)


# ---- dropout and embedding specifics -------------------------------------------------------
def test_dropout_reuses_its_mask_and_keeps_the_expected_value():
    tg.manual_seed(0)
    p = 0.25
    x = tg.tensor(np.full((200, 100), 2.0), requires_grad=True)
    out = F.dropout(x, p, training=True)
    kept = out.numpy() != 0
    np.testing.assert_allclose(out.numpy()[kept], 2 / (1 - p))  # inverted dropout
    assert abs(kept.mean() - (1 - p)) < 0.01
    assert abs(out.numpy().mean() - 2.0) < 0.03  # E[out] = x
    out.backward(np.ones(out.shape))
    np.testing.assert_array_equal(x.grad.numpy(), np.where(kept, 1 / (1 - p), 0))


def test_dropout_identity_in_eval_and_at_p0():
    x = tg.randn(3, 4, requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0, training=True) is x
    for p in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="dropout"):
            F.dropout(x, p)


def test_dropout_same_seed_same_mask():
    x = tg.ones(5, 7)
    tg.manual_seed(3)
    a = F.dropout(x, 0.5).numpy()
    tg.manual_seed(3)
    np.testing.assert_array_equal(F.dropout(x, 0.5).numpy(), a)
    assert not np.array_equal(F.dropout(x, 0.5).numpy(), a)  # the next draw differs


def test_embedding_scatter_adds_repeated_rows():
    w = tg.tensor(np.arange(12.0).reshape(4, 3), requires_grad=True)
    idx = np.array([[1, 3, 1], [1, 0, 3]])
    out = F.embedding(tg.tensor(idx), w)
    np.testing.assert_array_equal(out.numpy(), w.numpy()[idx])
    out.backward(np.ones(out.shape))
    # row 1 is looked up three times, row 3 twice, row 0 once, row 2 never
    np.testing.assert_array_equal(w.grad.numpy(), np.array([[1.0], [3], [0], [2]]) * np.ones(3))


def test_attention_kv_cache_rows_match_full_causal_attention():
    """The last Tq rows of full causal attention equal causal attention of just those
    queries against all Tk keys (what generation with a KV cache computes)."""
    rng = np.random.default_rng(0)
    q, k, v = (tg.tensor(rng.standard_normal((2, 3, 5, 4))) for _ in range(3))
    full = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    for Tq in (1, 2, 5):
        part = F.scaled_dot_product_attention(q[:, :, 5 - Tq:], k, v, is_causal=True)
        np.testing.assert_allclose(part.numpy(), full.numpy()[:, :, 5 - Tq:], rtol=1e-12)


def test_attention_dropout_only_in_training():
    rng = np.random.default_rng(2)
    q, k, v = (tg.tensor(rng.standard_normal((1, 2, 4, 3))) for _ in range(3))
    plain = F.scaled_dot_product_attention(q, k, v).numpy()
    off = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5, training=False).numpy()
    on = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5).numpy()
    np.testing.assert_array_equal(off, plain)
    assert not np.allclose(on, plain)


@pytest.mark.parametrize("causal, dropout_p", [(True, 0.0), (False, 0.0), (True, 0.3)])
def test_packed_qkv_attention_equals_split_attend_merge(causal, dropout_p):
    """One node over qkv [B, T, 3C] gives what the six-node composition gives, forward and
    backward (GPT's attention takes this path when training)."""
    B, T, nh, hs = 2, 5, 3, 4
    data = np.random.default_rng(3).standard_normal((B, T, 3 * nh * hs))
    up = np.random.default_rng(4).standard_normal((B, T, nh * hs))
    outs = []
    for packed in (True, False):
        qkv = tg.tensor(data, requires_grad=True)
        tg.manual_seed(0)  # the same dropout mask both ways
        if packed:
            y = F.packed_qkv_attention(qkv, nh, dropout_p, is_causal=causal)
        else:
            q, k, v = qkv.reshape(B, T, 3, nh, hs).permute(2, 0, 3, 1, 4).unbind(0)
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=causal)
            y = y.permute(0, 2, 1, 3).reshape(B, T, nh * hs)
        (y * tg.tensor(up)).sum().backward()
        outs.append((y.numpy(), qkv.grad.numpy()))
    for got, want in zip(*outs):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    qkv = tg.tensor(data, requires_grad=True)
    assert tg.gradcheck(lambda t: F.packed_qkv_attention(t, nh, is_causal=causal), [qkv])


def test_packed_qkv_attention_rejects_a_bad_shape():
    with pytest.raises(ValueError, match="packed_qkv_attention: qkv .* n_head=2"):
        F.packed_qkv_attention(tg.zeros(1, 3, 9), 2)


def test_attention_bool_mask_equals_additive_mask():
    rng = np.random.default_rng(1)
    q, k, v = (tg.tensor(rng.standard_normal((1, 2, 3, 4))) for _ in range(3))
    keep = np.tril(np.ones((3, 3), dtype=bool))
    a = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
    b = F.scaled_dot_product_attention(q, k, v, attn_mask=np.where(keep, 0.0, -np.inf))
    c = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)
    np.testing.assert_allclose(a.numpy(), c.numpy(), rtol=1e-12)


# ---- leaky_relu against PyTorch ------------------------------------------------------------
@pytest.mark.parametrize("slope", [0.01, 0.2, 0.0])
@settings(deadline=None, max_examples=10)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), seed=st.integers(0, 2**16))
def test_leaky_relu_matches_torch(slope, shape, seed):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    x.flat[0] = 0.0  # the kink: value 0 and gradient negative_slope, as in PyTorch
    ours = tg.tensor(x, requires_grad=True)
    theirs = torch.tensor(x, requires_grad=True)
    out, want = F.leaky_relu(ours, slope), torch.nn.functional.leaky_relu(theirs, slope)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.numpy(), want.detach().numpy())
    g = np.random.default_rng(seed + 1).standard_normal(shape).astype(np.float32)
    out.backward(g)
    want.backward(torch.from_numpy(g))
    np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())


# ---- bad input: clear errors, named shapes -------------------------------------------------
def test_cross_entropy_out_of_range_target():
    logits = tg.randn(3, 5)
    with pytest.raises(IndexError, match=r"7.*5 classes"):
        F.cross_entropy(logits, np.array([0, 7, 1]))
    with pytest.raises(IndexError, match="5 classes"):
        F.cross_entropy(logits, np.array([0, -3, 1]))


def test_cross_entropy_float_target():
    # float targets are class probabilities (PyTorch): they need the input's shape
    with pytest.raises(ValueError, match=r"integer class indices, or class probabilities .*"
                                         r"\(3, 5\).*of shape \(3,\)"):
        F.cross_entropy(tg.randn(3, 5), np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="integer class indices"):
        F.cross_entropy(tg.randn(3, 5), tg.tensor([0.0, 1.0, 2.0]))


def test_cross_entropy_target_shape_mismatch():
    with pytest.raises(ValueError, match=r"\(2, 3, 5\).*\(2, 3\).*\(6,\)"):
        F.cross_entropy(tg.randn(2, 3, 5), np.zeros(6, dtype=np.int64))
    with pytest.raises(ValueError, match="unknown reduction"):
        F.cross_entropy(tg.randn(2, 5), np.zeros(2, dtype=np.int64), reduction="avg")


@pytest.mark.parametrize("out_features", [3, 1])  # 1: gx is an outer product
def test_linear_gradient_of_a_batch_last_input(out_features):
    """A flattened conv output is a transposed view (batch-last memory, see conv.py); its
    gradient is computed in that order too, and must be the same numbers."""
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((12, 5))                       # [in, N] in memory
    w, b = (tg.tensor(rng.standard_normal(s), requires_grad=True)
            for s in ((out_features, 12), (out_features,)))
    grads = []
    for data, transposed in ((rows.T, True), (rows.T.copy(), False)):   # [N, in]
        x = Tensor(data, requires_grad=True)                 # (tg.tensor would copy)
        assert x.data.flags.c_contiguous != transposed
        F.linear(x, w, b).tanh().sum().backward()
        grads.append(x.grad.numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12)


def test_linear_feature_mismatch_names_shapes():
    with pytest.raises(ValueError, match=r"4 features.*\(3, 5\)"):
        F.linear(tg.randn(2, 4), tg.randn(3, 5))


def test_embedding_out_of_range_index():
    w = tg.randn(5, 3)
    with pytest.raises(IndexError, match=r"5.*5 rows"):
        F.embedding(np.array([0, 5]), w)
    with pytest.raises(IndexError, match=r"-1.*5 rows"):
        F.embedding(np.array([-1, 2]), w)
    with pytest.raises(TypeError, match="integer"):
        F.embedding(np.array([0.0, 1.0]), w)


def test_layer_norm_shape_mismatch():
    with pytest.raises(ValueError, match=r"\(5,\).*\(2, 4\)"):
        F.layer_norm(tg.randn(2, 4), (5,))
    with pytest.raises(ValueError, match="bias without a weight"):
        F.layer_norm(tg.randn(2, 4), 4, None, tg.zeros(4))


def test_attention_shape_mismatch():
    q, k = tg.randn(1, 2, 3, 4), tg.randn(1, 2, 3, 5)
    with pytest.raises(ValueError, match=r"q \(1, 2, 3, 4\), k \(1, 2, 3, 5\)"):
        F.scaled_dot_product_attention(q, k, k)
    with pytest.raises(ValueError, match=r"v \(1, 2, 6, 4\)"):
        F.scaled_dot_product_attention(q, q, tg.randn(1, 2, 6, 4))


def test_nll_loss_target_shape_mismatch():
    log_probs = F.log_softmax(tg.randn(3, 4), axis=-1)
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        F.nll_loss(log_probs, np.array([0, 1]))


def test_gelu_approximate_options():
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(tg.randn(3), approximate="erf")


@pytest.mark.parametrize("layout", ["c", "batch_last", "strided", "tail", "small"])
def test_relu_forward_is_maximum_with_zero_in_any_layout(layout):
    """backend.positive_part (ReLU's forward) compares rows of x's memory with a row of zeros:
    the same numbers as np.maximum(x, 0), NaN kept, in x's memory layout, for a batch-last
    conv map, a C-order one, a strided view, a size that leaves a tail, and a small array."""
    from tinygen.backend import positive_part
    rng = np.random.default_rng(0)
    x = {"c": lambda: rng.standard_normal((64, 16, 32, 32)),
         "batch_last": lambda: rng.standard_normal((16, 32, 32, 64)).transpose(3, 0, 1, 2),
         "strided": lambda: rng.standard_normal((64, 16, 32, 32))[:, ::2],
         "tail": lambda: rng.standard_normal((1000, 33)),
         "small": lambda: rng.standard_normal((7, 3))}[layout]().astype(np.float32)
    x[(0,) * x.ndim] = np.nan
    y = positive_part(x)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    assert y.strides == np.empty_like(x).strides
    out = tg.nn.functional.relu(tg.tensor(x)).numpy()
    np.testing.assert_array_equal(out, np.maximum(x, 0))


@pytest.mark.parametrize("T", [64, 100, 256])
@pytest.mark.parametrize("dropout", [False, True])
def test_causal_attention_in_query_blocks_matches_one_block(T, dropout, monkeypatch):
    """Causal attention split into query blocks (each seeing the keys up to its end) gives
    the one-block result, forward and all three gradients, with and without a dropout
    mask, through the packed-qkv Function (its gradients written into one array) too."""
    from tinygen.ops import attention
    assert len(attention.query_blocks(T)) > 1
    rng = np.random.default_rng(T)
    B, nh, hs = 2, 3, 8
    q, k, v, g = (rng.standard_normal((B, nh, T, hs)).astype(np.float32) for _ in range(4))
    drop = (rng.random((B, nh, T, T)) > 0.2).astype(np.float32) * 1.25 if dropout else None
    qkv = rng.standard_normal((B, T, 3 * nh * hs)).astype(np.float32)
    gy = rng.standard_normal((B, T, nh * hs)).astype(np.float32)

    def run():
        f = attention.ScaledDotProductAttention()
        y = f.forward(q, k, v, is_causal=True, dropout=drop)
        p = attention.PackedQKVAttention()
        return (y, *f.backward(g), p.forward(qkv, nh, is_causal=True), p.backward(gy))

    split = run()
    monkeypatch.setattr(attention, "query_blocks", lambda T: [(slice(0, T), T)])
    whole = run()
    for a, b in zip(split, whole):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)

"""Regression tests for results that used to be wrong at the edges (issue #12, "Wrong
today"): integer min, pow's special values and gradients, var/std with too few entries,
a learned attention mask, mixed advanced indexing, PyTorch's dtype promotion, PyTorch-valid
input that used to raise, and input that must raise. Expected values are PyTorch's (written
out, so they run without torch; test_tensor_parity.py compares with torch itself)."""

import math

import numpy as np
import pytest

import tinygen as tg
import tinygen.nn.functional as F


# ---- min on integers and bool ---------------------------------------------------------
@pytest.mark.parametrize("values, dtype, expected", [
    ([[0, 1, 2, 3, 4, 5]], np.uint8, 0), ([0, 128, 255, 64, 32, 16], np.uint8, 0),
    ([0, -2 ** 31], np.int32, -2 ** 31), ([True, False], np.bool_, False),
    ([3, 1, 2], np.int64, 1)])
def test_min_of_integers_and_bool(device, values, dtype, expected):
    t = tg.tensor(np.array(values, dtype=dtype), device=device)
    assert t.min().item() == expected and t.min().dtype == dtype
    assert t.reshape(-1).min(0).item() == expected


def test_min_gradient_splits_ties(device):
    x = tg.tensor([1.0, 0.5, 0.5], device=device, requires_grad=True)
    x.min().backward()
    assert x.grad.tolist() == [0.0, 0.5, 0.5]


# ---- pow --------------------------------------------------------------------------------
def test_pow_special_values(device):
    x = tg.tensor([-math.inf, math.inf, 0.0, -2.0], device=device)
    assert (x ** 0).tolist() == [1.0, 1.0, 1.0, 1.0]
    assert (x ** tg.zeros(4, device=device)).tolist() == [1.0, 1.0, 1.0, 1.0]
    assert (tg.tensor([-2.0], device=device) ** tg.tensor([3.0], device=device)).item() == -8
    assert (2 ** tg.tensor([3.0, -1.0], device=device)).tolist() == [8.0, 0.5]
    assert (0 ** tg.tensor([0.0], device=device)).item() == 1.0
    assert math.isnan((tg.tensor([-2.0], device=device) ** 0.5).item())  # as PyTorch


def test_pow_gradients_at_zero(device):
    x = tg.tensor([0.0, 1.0], device=device, requires_grad=True)
    (x ** 0.3).sum().backward()
    assert x.grad.tolist()[0] == math.inf and abs(x.grad.tolist()[1] - 0.3) < 1e-6
    x = tg.tensor([0.0, 1.0], device=device, requires_grad=True)
    e = tg.tensor([0.0, 0.3], device=device, requires_grad=True)
    (x ** e).sum().backward()  # PyTorch: x.grad [0, 0.3], e.grad [0, 0]
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.3], rtol=1e-6)
    np.testing.assert_array_equal(e.grad.numpy(), [0.0, 0.0])


def test_pow_of_negative_base_gradient(device):
    x = tg.tensor([-2.0], device=device, requires_grad=True)
    (x ** 3).backward()
    assert x.grad.item() == 12.0


# ---- var / std with N - correction <= 0 ---------------------------------------------------
def test_var_with_too_few_entries_is_nan_or_inf(device):
    one = tg.tensor([1.0], device=device)
    assert math.isnan(one.var(correction=1).item())
    assert math.isnan(one.std(unbiased=True).item())
    assert tg.tensor([1.0, 2.0], device=device).var(correction=2).item() == math.inf
    assert math.isnan(tg.tensor([1.0, 1.0], device=device).var(correction=2).item())
    assert math.isnan(tg.zeros(0, 3, device=device).var(0).tolist()[0])
    assert tg.tensor([1.0, 2.0], device=device).var(correction=1).item() == 0.5


# ---- a learned float attention mask gets its gradient --------------------------------------
def test_float_attn_mask_gets_a_gradient(device):
    tg.manual_seed(0)
    q, k, v = (tg.randn(1, 2, 3, 4, device=device) for _ in range(3))
    bias = tg.zeros(3, 3, device=device, requires_grad=True)
    F.scaled_dot_product_attention(q, k, v, attn_mask=bias).pow(2).sum().backward()
    assert bias.grad is not None and float(abs(bias.grad).sum().item()) > 0
    # and the value equals the fused path's (a constant mask)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.detach())
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)


def test_float_attn_mask_gradient_is_right():
    rng = np.random.default_rng(0)
    q, k, v = (tg.tensor(rng.standard_normal((2, 3, 4))) for _ in range(3))
    m = tg.tensor(rng.standard_normal((3, 3)), requires_grad=True)
    assert tg.gradcheck(lambda m: F.scaled_dot_product_attention(q, k, v, attn_mask=m), [m])


def test_is_causal_with_attn_mask_raises(device):
    q = tg.zeros(1, 2, 4, device=device)
    with pytest.raises(ValueError, match="is_causal"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=tg.zeros(2, 2, device=device),
                                       is_causal=True)


# ---- mixed advanced indexing ----------------------------------------------------------
def test_mixed_indexing_keeps_pytorch_axis_order(device):
    x = tg.arange(2 * 3 * 12 * 4 * 5, device=device).reshape(2, 3, 12, 4, 5)
    d = tg.tensor([0, 2, 3], device=device)
    out = x[1, :, 3:11:2, d, 0:2]
    assert out.shape == (3, 4, 3, 2)  # NumPy would give (3, 3, 4, 2)
    expected = x.numpy()[1][:, 3:11:2][:, :, [0, 2, 3]][..., 0:2]
    np.testing.assert_array_equal(out.numpy(), expected)


def test_mixed_indexing_gradient(device):
    x = tg.ones(2, 3, 4, device=device, requires_grad=True)
    x[0, :, [1, 1, 3]].sum().backward()
    g = np.zeros((2, 3, 4))
    g[0, :, 1], g[0, :, 3] = 2, 1
    np.testing.assert_array_equal(x.grad.numpy(), g)


# ---- dtype promotion --------------------------------------------------------------------
I32, I64, F32, F64 = np.int32, np.int64, np.float32, np.float64


@pytest.mark.parametrize("make, dtype", [
    (lambda i, f: i + 0.5, F32), (lambda i, f: 0.5 * i, F32), (lambda i, f: i / i, F32),
    (lambda i, f: i / 2, F32), (lambda i, f: f + i, F32), (lambda i, f: i * f, F32),
    (lambda i, f: i.exp(), F32), (lambda i, f: i.sqrt(), F32), (lambda i, f: i + 2, I32),
    (lambda i, f: i // 2, I32), (lambda i, f: i.sum(), I64), (lambda i, f: (i > 1) + 1, I64),
    (lambda i, f: (i > 1) + 1.5, F32), (lambda i, f: (i > 1) & (i < 3), np.bool_),
    (lambda i, f: f + tg.tensor(1.0, dtype=F64), F32),   # a 0-d tensor does not widen
    (lambda i, f: f + tg.tensor([1.0], dtype=F64), F64),
    (lambda i, f: i + tg.tensor(2.5, dtype=F64), F64),   # ... unless of a higher category
    (lambda i, f: i + tg.tensor(2), I32), (lambda i, f: f * np.cos(np.arange(3.0)), F32),
    (lambda i, f: np.cos(np.arange(3.0)) + f, F32), (lambda i, f: i.mean(), F32),
    (lambda i, f: tg.full((2,), 4), I64), (lambda i, f: tg.full((2,), 4.0), F32),
    (lambda i, f: tg.full((2,), True), np.bool_), (lambda i, f: i ** 2, I32),
    (lambda i, f: i ** 0.5, F32), (lambda i, f: i.float(), F32),
], ids=lambda v: "" if callable(v) else str(np.dtype(v)))
def test_pytorch_promotion(make, dtype):
    i = tg.tensor(np.array([1, 2, 3], dtype=I32))
    f = tg.tensor([1.0, 2.0, 3.0])
    assert make(i, f).dtype == dtype


def test_array_constant_keeps_a_float32_model_float32(device):
    x = tg.ones(3, device=device, requires_grad=True)
    table = np.cos(np.arange(3.0))  # float64
    y = (x * table + table).sum()
    y.backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32


def test_float64_tensor_with_float32_array_stays_float64():
    x = tg.tensor(np.ones(3))  # float64
    assert (x * np.ones(3, dtype=np.float32)).dtype == np.float64


# ---- PyTorch-valid input that used to raise -------------------------------------------------
def test_reductions_of_a_0d_tensor_over_axis_0_and_minus_1(device):
    t = tg.tensor(3.0, device=device)
    for axis in (0, -1):
        assert t.sum(axis).item() == 3.0 and t.sum(dim=axis).shape == ()
        assert t.mean(axis).item() == 3.0 and t.max(axis).item() == 3.0
    with pytest.raises(ValueError, match="axis 1"):
        t.sum(1)


def test_squeeze_of_a_dim_that_is_not_1_is_a_no_op(device):
    t = tg.ones(2, 1, 3, device=device)
    assert t.squeeze(0).shape == (2, 1, 3) and t.squeeze(1).shape == (2, 3)
    assert t.squeeze((0, 1)).shape == (2, 3)
    assert tg.tensor(1.0, device=device).squeeze(0).shape == ()
    assert tg.tensor(1.0, device=device).squeeze(-1).shape == ()


def test_where_with_two_scalars(device):
    cond = tg.tensor([True, False], device=device)
    out = tg.where(cond, 4, 2)
    assert out.tolist() == [4, 2] and out.dtype == np.int64
    assert tg.where(cond, 4.0, 2).dtype == np.float32


def test_clip_without_bounds_raises(device):
    with pytest.raises(ValueError, match="clip"):
        tg.ones(2, device=device).clip(None, None)
    with pytest.raises(ValueError, match="clip"):
        tg.ones(2, device=device).clamp()

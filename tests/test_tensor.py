"""Tensor creation and conversion: dtype rules, float32 kept float32, factories, the random
seed, item/numpy/tolist, and moving between devices."""

import numpy as np
import pytest
from conftest import arrays, needs_cuda
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygen as tg


# ---- dtype rules --------------------------------------------------------------------------
@pytest.mark.parametrize("data, dtype", [
    (1.5, np.float32), ([1.0, 2.0], np.float32), ([[1, 2.5]], np.float32),
    (3, np.int64), ([[1, 2], [3, 4]], np.int64), (True, np.bool_), ([True, False], np.bool_),
    (np.array([1.0, 2.0]), np.float64), (np.array([1.0], dtype=np.float32), np.float32),
    (np.array([1, 2], dtype=np.int32), np.int32), (np.float64(2.0), np.float64),
], ids=repr)
def test_tensor_dtype_rules(device, data, dtype):
    """Python floats become float32 (as in PyTorch), ints int64; arrays keep their dtype."""
    t = tg.tensor(data, device=device)
    assert t.dtype == dtype
    assert t.device == device
    np.testing.assert_array_equal(t.numpy(), np.asarray(data, dtype=dtype))


def test_explicit_dtype_wins(device):
    assert tg.tensor([1, 2], dtype=tg.float64, device=device).dtype == np.float64
    assert tg.tensor([1.0], dtype=tg.float16, device=device).dtype == np.float16
    assert tg.tensor(np.ones(2), dtype=tg.float32, device=device).dtype == np.float32
    t = tg.tensor([1.0, 2.0], device=device)
    assert tg.tensor(t).dtype == np.float32


# Every one of these on a float32 tensor must stay float32, values and gradients alike:
# NumPy would promote to float64 if a Python scalar were turned into a float64 array.
FLOAT32_OPS = {
    "x * 2.0": lambda x: x * 2.0, "2.0 * x": lambda x: 2.0 * x, "x + 1": lambda x: x + 1,
    "2.0 - x": lambda x: 2.0 - x, "x - 0.5": lambda x: x - 0.5, "x / 3": lambda x: x / 3,
    "2 / x": lambda x: 2 / x, "x ** 2": lambda x: x ** 2, "x ** 0.5": lambda x: x ** 0.5,
    "2 ** x": lambda x: 2 ** x, "x ** x": lambda x: x ** x, "-x": lambda x: -x,
    "exp": lambda x: x.exp(), "log": lambda x: x.log(), "sqrt": lambda x: x.sqrt(),
    "tanh": lambda x: x.tanh(), "sigmoid": lambda x: x.sigmoid(), "relu": lambda x: x.relu(),
    "abs": lambda x: x.abs(), "clip": lambda x: x.clip(0.1, 0.9),
    "sum": lambda x: x.sum(), "mean": lambda x: x.mean(), "mean(0)": lambda x: x.mean(0),
    "var": lambda x: x.var(), "var(1, ddof=1)": lambda x: x.var(1, ddof=1),
    "softmax": lambda x: x.softmax(-1), "log_softmax": lambda x: x.log_softmax(-1),
    "matmul": lambda x: x @ x.T, "getitem": lambda x: x[[0, 0], ::-1],
    "where": lambda x: tg.where(x > 0.5, x, 0.0), "masked_fill": lambda x: x.masked_fill(
        x > 0.5, -1e9), "cat": lambda x: tg.cat([x, x * 2], axis=1),
}


@pytest.mark.parametrize("name", FLOAT32_OPS)
def test_float32_stays_float32(device, name):
    x = tg.tensor([[0.2, 0.4, 0.6], [0.8, 0.3, 0.7]], device=device, requires_grad=True)
    out = FLOAT32_OPS[name](x)
    assert out.dtype == np.float32
    out.sum().backward()
    assert x.grad.dtype == np.float32


@pytest.mark.parametrize("name", ["max", "min"])
def test_float32_max_min_gradients_stay_float32(device, name):
    x = tg.tensor([[0.2, 0.4, 0.6], [0.8, 0.3, 0.7]], device=device, requires_grad=True)
    out = getattr(x, name)(axis=1)
    assert out.dtype == np.float32
    out.sum().backward()
    assert x.grad.dtype == np.float32


def test_comparisons_give_bool_tensors_without_grad(device):
    x = tg.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    for out in (x > 2, x >= 2, x < 2, x <= 2, x == 2, x != 2, x > tg.ones(3, device=device)):
        assert out.dtype == np.bool_ and not out.requires_grad
    np.testing.assert_array_equal((x > 1.5).numpy(), [False, True, True])


# ---- factories ----------------------------------------------------------------------------
@pytest.mark.parametrize("make, value", [(tg.zeros, 0.0), (tg.ones, 1.0)])
def test_zeros_ones(device, make, value):
    for t in (make(2, 3, device=device), make((2, 3), device=device)):
        assert t.shape == (2, 3) and t.dtype == np.float32 and t.device == device
        np.testing.assert_array_equal(t.numpy(), np.full((2, 3), value))
    assert make(4, dtype=tg.float64, device=device).dtype == np.float64
    assert make(2, device=device, requires_grad=True).requires_grad
    assert make(device=device).shape == ()


def test_full_and_like(device):
    t = tg.full((2, 3), 7.0, device=device)
    assert t.shape == (2, 3) and t.dtype == np.float32
    np.testing.assert_array_equal(t.numpy(), np.full((2, 3), 7.0))
    assert tg.full(3, 2, dtype=tg.int64, device=device).tolist() == [2, 2, 2]
    z = tg.zeros_like(tg.full((1, 2), 5.0, dtype=tg.float64, device=device))
    assert z.shape == (1, 2) and z.dtype == np.float64 and z.device == device
    assert z.numpy().sum() == 0
    assert tg.ones_like(t).numpy().sum() == 6


def test_arange(device):
    t = tg.arange(5, device=device)
    assert t.dtype == np.int64 and t.tolist() == [0, 1, 2, 3, 4]
    assert tg.arange(1, 7, 2, device=device).tolist() == [1, 3, 5]
    f = tg.arange(0, 1, 0.25, device=device)
    assert f.dtype == np.float32 and f.tolist() == [0.0, 0.25, 0.5, 0.75]
    assert tg.arange(3, dtype=tg.float64, device=device).dtype == np.float64


@pytest.mark.parametrize("make", [tg.randn, tg.rand])
def test_random_factories(device, make):
    t = make(2, 3, device=device)
    assert t.shape == (2, 3) and t.dtype == np.float32 and t.device == device
    assert make((4,), dtype=tg.float64, device=device).dtype == np.float64
    assert make(2, device=device, requires_grad=True).requires_grad
    tg.manual_seed(123)
    a = make(5, device=device).numpy()
    tg.manual_seed(123)
    b = make(5, device=device).numpy()
    c = make(5, device=device).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)  # the stream moves on
    tg.manual_seed(124)
    assert not np.array_equal(a, make(5, device=device).numpy())


def test_random_distributions(device):
    tg.manual_seed(0)
    u = tg.rand(10_000, device=device).numpy()
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.02
    n = tg.randn(10_000, device=device).numpy()
    assert abs(n.mean()) < 0.05 and abs(n.std() - 1) < 0.05
    i = tg.randint(2, 5, (1000,), device=device)
    assert i.dtype == np.int64 and set(i.tolist()) == {2, 3, 4}


def test_rng_state_round_trip():
    tg.manual_seed(7)
    state = tg.get_rng_state()
    a = tg.randn(3).numpy()
    tg.set_rng_state(state)
    np.testing.assert_array_equal(a, tg.randn(3).numpy())


# ---- conversion ---------------------------------------------------------------------------
def test_item_numpy_tolist(device):
    x = tg.tensor([[1.5, 2.0]], device=device)
    assert x[0, 1].item() == 2.0 and isinstance(x.sum().item(), float)
    assert tg.tensor([7], device=device).item() == 7
    assert isinstance(tg.tensor(7, device=device).item(), int)
    with pytest.raises(ValueError, match=r"item.*\(1, 2\)"):
        x.item()
    assert isinstance(x.numpy(), np.ndarray) and x.numpy().dtype == np.float32
    assert x.tolist() == [[1.5, 2.0]]
    assert x.shape == (1, 2) and x.ndim == 2 and x.numel() == 2 and len(x) == 1
    assert x.size() == (1, 2) and x.size(1) == 2
    assert "tensor(" in repr(x)
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(x)
    assert bool(tg.tensor([1.0], device=device) > 0)
    # float() and int() of a one-element tensor, as in PyTorch
    assert float(x[0, 0]) == 1.5 and type(float(x[0, 0])) is float
    assert int(x[0, 0]) == 1 and int(tg.tensor([[-2.7]], device=device)) == -2
    with pytest.raises(ValueError, match=r"item.*\(1, 2\)"):
        float(x)


def test_numpy_of_a_grad_tensor_has_no_graph(device):
    x = tg.tensor([1.0, 2.0], device=device, requires_grad=True)
    y = (x * 2).numpy()
    assert isinstance(y, np.ndarray)
    np.testing.assert_array_equal(y, [2.0, 4.0])


def test_dtype_shortcuts(device):
    x = tg.tensor([1.7, -2.2], device=device, requires_grad=True)
    assert x.double().dtype == np.float64 and x.float() is x
    assert x.long().dtype == np.int64 and not x.long().requires_grad
    assert x.to(device) is x and x.to(dtype=np.float32) is x


@needs_cuda
@given(x=arrays(hnp.array_shapes(max_dims=3, max_side=4)), dtype=st.sampled_from(
    [np.float32, np.float64]))
def test_moving_between_devices_is_differentiable(x, dtype):
    t = tg.tensor(x, dtype=dtype, requires_grad=True)
    y = t.to("cuda")
    assert y.device == "cuda" and y.requires_grad and y.dtype == dtype
    np.testing.assert_array_equal(y.cpu().numpy(), x.astype(dtype))
    (y * y).sum().backward()
    assert t.grad.device == "cpu" and t.grad.dtype == dtype
    np.testing.assert_allclose(t.grad.numpy(), 2 * x.astype(dtype), rtol=1e-6)


@needs_cuda
def test_cuda_and_cpu_agree():
    tg.manual_seed(0)
    x = tg.randn(3, 4, dtype=tg.float64)
    w = tg.randn(4, 5, dtype=tg.float64)
    cpu = (x @ w).softmax(-1).log().sum(0)
    gpu = (x.cuda() @ w.cuda()).softmax(-1).log().sum(0)
    np.testing.assert_allclose(gpu.numpy(), cpu.numpy(), rtol=1e-10)


def test_tensor_copies_its_input_array():
    a = np.ones(3, dtype=np.float32)
    t = tg.tensor(a)
    t.data += 1
    np.testing.assert_array_equal(a, [1, 1, 1])


def test_mean_of_nothing_is_nan():
    assert np.isnan(tg.tensor(np.zeros((0, 3))).mean().item())


# ---- np.asarray(tensor): PyTorch's Tensor.__array__ --------------------------------------
def test_array_protocol_on_cpu_shares_memory():
    t = tg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    a = np.asarray(t)
    assert type(a) is np.ndarray and a.dtype == np.float32 and a.tolist() == t.tolist()
    assert np.shares_memory(a, t.data)  # no copy, as for a CPU torch tensor
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    assert not np.shares_memory(np.array(t), t.data)  # np.array copies by default
    with pytest.raises(ValueError, match="copy"):
        np.asarray(t, dtype=np.float64, copy=False)
    assert np.asarray(tg.tensor(3)).item() == 3 and np.asarray(tg.tensor(3)).ndim == 0
    # NumPy functions and stacking a list of tensors work as on torch tensors
    assert np.allclose(np.cos(t), np.cos(t.numpy()))
    assert np.stack([tg.tensor([1, 2]), tg.tensor([3, 4])]).tolist() == [[1, 2], [3, 4]]


def test_array_protocol_keeps_operator_dispatch():
    # ndarray ⊕ Tensor still goes to the Tensor's reflected operator (a Tensor comes out)
    out = np.ones(2, np.float32) + tg.tensor([1.0, 2.0], requires_grad=True)
    assert isinstance(out, tg.Tensor) and out.requires_grad


def test_array_protocol_refuses_a_device_tensor(device):
    if device == "cpu":
        pytest.skip("the implicit copy is refused for device tensors only")
    t = tg.ones(3, device=device)
    with pytest.raises(TypeError, match=r"\.numpy\(\) or \.cpu\(\)"):
        np.asarray(t)
    assert np.asarray(t.cpu()).tolist() == [1.0, 1.0, 1.0]

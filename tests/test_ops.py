"""Elementwise ops: gradients against central differences and values against NumPy.

Each op is drawn from its own safe domain: divisors and abs/relu inputs keep away from 0,
log/sqrt and fractional powers get positive inputs, clip's inputs keep away from its bounds.
Reductions are in test_ops_reduce.py, shape-changing ops in test_ops_shape.py.
"""

import numpy as np
import pytest
from conftest import (
    BROADCAST_PAIRS,
    SHAPES,
    arrays,
    assert_forward,
    away_from_zero,
    check_grad,
    floats,
    leaf,
)
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygen as tg


@given(data=st.data(), shapes=BROADCAST_PAIRS)
def test_binary_with_only_one_input_requiring_grad(device, data, shapes):
    a = data.draw(arrays(shapes.input_shapes[0]))
    b = data.draw(arrays(shapes.input_shapes[1], away_from_zero(0.5)))
    const = leaf(b, device, requires_grad=False)
    check_grad(lambda x: (x - const) * const / const, [a], device)
    const = leaf(a, device, requires_grad=False)
    check_grad(lambda y: (const - y) * const / y, [b], device)


# r-ops: the constant is on the left, so Python calls the Tensor's __r*__ method
R_OPS = {
    "2 + x": (lambda x: 2 + x, lambda x: 2 + x, floats()),
    "2 - x": (lambda x: 2 - x, lambda x: 2 - x, floats()),
    "2 * x": (lambda x: 2 * x, lambda x: 2 * x, floats()),
    "2 / x": (lambda x: 2 / x, lambda x: 2 / x, away_from_zero(0.5)),
    "2 ** x": (lambda x: 2 ** x, lambda x: 2.0 ** x, floats()),
    "0.5 - x": (lambda x: 0.5 - x, lambda x: 0.5 - x, floats()),
}


@pytest.mark.parametrize("name", R_OPS)
@given(data=st.data(), shape=SHAPES)
def test_rop_grad_and_forward(device, name, data, shape):
    fn, ref, domain = R_OPS[name]
    x = data.draw(arrays(shape, domain))
    check_grad(fn, [x], device)
    assert_forward(fn(leaf(x, device)), ref(x))


@given(data=st.data(), shapes=BROADCAST_PAIRS)
def test_ndarray_on_the_left_of_a_tensor(device, data, shapes):
    """ndarray + Tensor must give a Tensor (Tensor.__array_priority__), not an object array."""
    a = data.draw(arrays(shapes.input_shapes[0]))
    x = data.draw(arrays(shapes.input_shapes[1], away_from_zero(0.5)))
    xp_a = leaf(a, device).data  # an array of the tensor's own backend
    for fn, ref in [(lambda t: xp_a + t, a + x), (lambda t: xp_a * t, a * x),
                    (lambda t: xp_a - t, a - x), (lambda t: xp_a / t, a / x)]:
        out = fn(leaf(x, device))
        assert isinstance(out, tg.Tensor)
        assert_forward(out, ref)
        check_grad(fn, [x], device)


EXPONENTS = [0, 1, 2, 3, -1, -2, 0.5, 1.5, -0.5, 2.5]


@given(data=st.data(), shape=SHAPES, p=st.sampled_from(EXPONENTS))
def test_pow_scalar_exponent(device, data, shape, p):
    # whole positive powers are smooth everywhere, x ** 0 away from 0 (its
    # gradient at 0 has a test of its own);
    # the others need x > 0
    domain = floats(0.2, 3.0)
    if isinstance(p, int) and p >= 0:
        domain = floats() if p > 0 else away_from_zero()
    x = data.draw(arrays(shape, domain))
    check_grad(lambda t: t ** p, [x], device)
    assert_forward(leaf(x, device) ** p, x ** p)


@pytest.mark.filterwarnings("ignore:divide by zero", "ignore:invalid value")
def test_pow_zero_exponent_has_zero_gradient_at_zero(device):
    x = tg.tensor([0.0, 2.0], device=device, requires_grad=True)
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])


@given(data=st.data(), shapes=BROADCAST_PAIRS)
def test_pow_tensor_exponent(device, data, shapes):
    """x ** y with both tensors (x > 0): gradients flow to the base and the exponent."""
    x = data.draw(arrays(shapes.input_shapes[0], floats(0.2, 3.0)))
    y = data.draw(arrays(shapes.input_shapes[1], floats(-2.0, 2.0)))
    check_grad(lambda a, b: a ** b, [x, y], device)
    assert_forward(leaf(x, device) ** leaf(y, device), x ** y)


def test_relu_and_abs_at_zero_follow_pytorch(device):
    x = tg.tensor([-1.0, 0.0, 2.0], device=device, requires_grad=True)
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 1.0])
    x.grad = None
    x.abs().sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [-1.0, 0.0, 1.0])


def test_sigmoid_is_stable_for_large_inputs(device):
    x = tg.tensor([-1000.0, 0.0, 1000.0], device=device, requires_grad=True)
    y = x.sigmoid()
    np.testing.assert_allclose(y.numpy(), [0.0, 0.5, 1.0])
    y.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()


# Values on a grid of odd multiples of 0.05 and bounds on multiples of 0.1: every value is
# at least 0.05 from either bound, far beyond gradcheck's eps.
GRID = st.integers(-30, 29).map(lambda k: (2 * k + 1) * 0.05)
BOUND = st.integers(-15, 15).map(lambda k: k * 0.1)


@given(data=st.data(), shape=SHAPES, lo=st.none() | BOUND, width=st.integers(1, 20))
def test_clip(device, data, shape, lo, width):
    hi = data.draw(st.none() | st.just(0.1 * width + (lo if lo is not None else -1.0)))
    x = data.draw(arrays(shape, GRID))
    if lo is None and hi is None:
        with pytest.raises(ValueError, match="clip"):  # PyTorch raises too
            leaf(x, device).clip(lo, hi)
        return
    check_grad(lambda t: t.clip(lo, hi), [x], device)
    assert_forward(leaf(x, device).clip(lo, hi), np.clip(x, lo, hi))
    t = leaf(x, device)
    t.clip(lo, hi).sum().backward()
    inside = (x >= (-np.inf if lo is None else lo)) & (x <= (np.inf if hi is None else hi))
    np.testing.assert_array_equal(t.grad.numpy(), inside.astype(np.float64))


@given(data=st.data(), shape=SHAPES, dtype=st.sampled_from([np.float32, np.float16]))
def test_cast_to_dtype(device, data, shape, dtype):
    """.to(dtype) is differentiable: the gradient comes back cast to the input's dtype."""
    x = data.draw(arrays(shape))
    w = data.draw(arrays(shape))
    t = leaf(x, device)
    y = t.to(dtype=dtype)
    assert y.dtype == dtype and y.requires_grad
    assert_forward(y, x.astype(dtype), rtol=0, atol=0)
    (y * tg.tensor(w, dtype=dtype, device=device)).sum().backward()
    assert t.grad.dtype == np.float64
    np.testing.assert_array_equal(t.grad.numpy(), w.astype(dtype).astype(np.float64))


@given(data=st.data(), shape=SHAPES)
def test_cast_round_trip_passes_gradcheck(device, data, shape):
    # float64 -> float64 is the identity; float64 -> longdouble -> float64 loses nothing
    x = data.draw(arrays(shape))
    check_grad(lambda t: (t.to(dtype=np.float64) * 0.5).exp(), [x], device)
    if device == "cpu":
        check_grad(lambda t: (t.to(dtype=np.longdouble) ** 2).to(dtype=np.float64), [x],
                   device)


def test_cast_to_integer_cuts_the_graph(device):
    x = tg.tensor([1.5, 2.5], device=device, requires_grad=True)
    assert not x.to(dtype=tg.int64).requires_grad


EMPTY_PAIRS = hnp.mutually_broadcastable_shapes(
    num_shapes=2, min_dims=1, max_dims=3, min_side=0, max_side=3)


@given(data=st.data(), shapes=EMPTY_PAIRS)
def test_size_zero_dims(device, data, shapes):
    """Empty dims broadcast like NumPy's, and gradients keep every input's shape."""
    a = data.draw(arrays(shapes.input_shapes[0]))
    b = data.draw(arrays(shapes.input_shapes[1]))

    def fn(x, y):
        return (x * y + x).sum(-1)

    check_grad(fn, [a, b], device)
    assert_forward(fn(leaf(a, device), leaf(b, device)), (a * b + a).sum(-1))
    x, y = leaf(a, device), leaf(b, device)
    fn(x, y).sum().backward()
    assert x.grad.shape == a.shape and y.grad.shape == b.shape


def test_matmul_over_an_empty_inner_dim_is_zero(device):
    a = tg.zeros(2, 0, dtype=tg.float64, device=device, requires_grad=True)
    b = tg.zeros(0, 3, dtype=tg.float64, device=device, requires_grad=True)
    out = a @ b
    np.testing.assert_array_equal(out.numpy(), np.zeros((2, 3)))
    out.sum().backward()
    assert a.grad.shape == (2, 0) and b.grad.shape == (0, 3)

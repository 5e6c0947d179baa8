"""Reductions (sum, mean, var, max, min) and the softmax family: gradients against central
differences, values against NumPy, and the documented tie rule of max/min."""

import numpy as np
import pytest
from conftest import (
    SHAPES,
    SHAPES_1D_UP,
    arrays,
    assert_forward,
    axis_args,
    check_grad,
    distinct_arrays,
    leaf,
)
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygen as tg


def reduce(t, name, axis, keepdims, alias):
    """t.<name>(axis, keepdims), written with NumPy's or PyTorch's keywords."""
    if alias:
        return getattr(t, name)(dim=axis, keepdim=keepdims)
    return getattr(t, name)(axis=axis, keepdims=keepdims)


REFERENCE = {"sum": np.sum, "mean": np.mean, "var": np.var, "max": np.max, "min": np.min}


@st.composite
def reduce_cases(draw, name):
    shape = draw(SHAPES)
    # max/min get distinct values: the tie rule has its own tests below
    x = draw(distinct_arrays(shape) if name in ("max", "min") else arrays(shape))
    return x, draw(axis_args(len(shape))), draw(st.booleans()), draw(st.booleans())


@pytest.mark.parametrize("name", REFERENCE)
@given(data=st.data())
def test_reduce_grad(device, name, data):
    x, axis, keepdims, alias = data.draw(reduce_cases(name))
    check_grad(lambda t: reduce(t, name, axis, keepdims, alias), [x], device)


@pytest.mark.parametrize("name", REFERENCE)
@given(data=st.data())
def test_reduce_forward(device, name, data):
    x, axis, keepdims, alias = data.draw(reduce_cases(name))
    out = reduce(leaf(x, device), name, axis, keepdims, alias)
    assert_forward(out, REFERENCE[name](x, axis=axis, keepdims=keepdims))


@given(x=arrays(hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4)),
       data=st.data())
def test_var_with_ddof(device, x, data):
    axis = data.draw(axis_args(x.ndim))
    check_grad(lambda t: t.var(axis, ddof=1), [x], device)
    assert_forward(leaf(x, device).var(axis, ddof=1), np.var(x, axis=axis, ddof=1))


# ---- ties in max/min: the gradient is split equally between the tied entries ---------------
def test_max_tie_splits_gradient_equally(device):
    x = tg.tensor([1.0, 3.0, 3.0, 2.0], device=device, requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.5, 0.5, 0.0])


def test_min_tie_splits_gradient_equally(device):
    x = tg.tensor([[2.0, -1.0, -1.0], [0.0, 0.0, 0.0]], device=device, requires_grad=True)
    (x.min(axis=1) * tg.tensor([1.0, 6.0], device=device)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 0.5, 0.5], [2.0, 2.0, 2.0]])


@pytest.mark.parametrize("name", ["max", "min"])
@given(data=st.data())
def test_max_min_ties_property(device, name, data):
    """Values from {-1, 0, 1}, so ties are everywhere: each tied entry gets grad / count."""
    x = data.draw(hnp.arrays(np.float64, SHAPES, elements=st.sampled_from([-1.0, 0.0, 1.0])))
    axis, keepdims = data.draw(axis_args(x.ndim)), data.draw(st.booleans())
    out_np = REFERENCE[name](x, axis=axis, keepdims=True)
    g = data.draw(arrays(out_np.shape))  # upstream gradient
    t = leaf(x, device)
    out = reduce(t, name, axis, keepdims, alias=False)
    out.backward(tg.tensor(g.reshape(out.shape), dtype=np.float64, device=device))
    hit = x == out_np
    count = hit.sum(axis=axis, keepdims=True)
    np.testing.assert_allclose(t.grad.numpy(), hit * g / count, rtol=1e-12)
    # a tie never gets more than the total gradient
    np.testing.assert_allclose(t.grad.numpy().sum(axis=axis), g.sum(axis=axis), rtol=1e-12)


# ---- softmax family -----------------------------------------------------------------------
def np_log_softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


SOFTMAX = {
    "softmax": (lambda t, axis: t.softmax(axis), np_softmax),
    "log_softmax": (lambda t, axis: t.log_softmax(axis), np_log_softmax),
    "softmax(dim=)": (lambda t, axis: t.softmax(dim=axis), np_softmax),
    "log_softmax(dim=)": (lambda t, axis: t.log_softmax(dim=axis), np_log_softmax),
}


@st.composite
def softmax_cases(draw):
    shape = draw(SHAPES_1D_UP)
    return draw(arrays(shape)), draw(st.integers(-len(shape), len(shape) - 1))


@pytest.mark.parametrize("name", SOFTMAX)
@given(case=softmax_cases())
def test_softmax_grad(device, name, case):
    x, axis = case
    fn = SOFTMAX[name][0]
    check_grad(lambda t: fn(t, axis), [x], device)


@pytest.mark.parametrize("name", SOFTMAX)
@given(case=softmax_cases())
def test_softmax_forward(device, name, case):
    x, axis = case
    fn, ref = SOFTMAX[name]
    assert_forward(fn(leaf(x, device), axis), ref(x, axis))


@given(case=softmax_cases())
def test_log_softmax_equals_log_of_softmax(device, case):
    x, axis = case
    t = leaf(x, device)
    np.testing.assert_allclose(t.log_softmax(axis).numpy(), t.softmax(axis).log().numpy(),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_family_is_stable_for_huge_inputs(device, dtype):
    x = tg.tensor([[1000.0, 0.0, -1000.0], [1000.0, 1000.0, 999.0]], dtype=dtype,
                  device=device, requires_grad=True)
    for fn in (lambda t: t.softmax(-1), lambda t: t.log_softmax(-1)):
        x.grad = None
        out = fn(x)
        assert np.isfinite(out.numpy()).all()
        (out * tg.tensor([[1.0, 2.0, 3.0]], dtype=dtype, device=device)).sum().backward()
        assert np.isfinite(x.grad.numpy()).all()
    x64 = x.numpy().astype(np.float64)
    np.testing.assert_allclose(x.log_softmax(-1).numpy(), np_log_softmax(x64, -1),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(x.softmax(-1).numpy()[0], [1.0, 0.0, 0.0])


@pytest.mark.parametrize("shape", [(48, 64, 64), (768, 65), (300, 1024), (5, 2000), (3, 4), (9000, 1)])
def test_row_maxes_is_max_over_the_last_axis(shape):
    """backend.row_maxes (argmax + gather for short rows) returns exactly x.max(-1): on
    rows with NaNs (NaN), all -inf (-inf), repeated maxima, and a non-contiguous view."""
    from tinygen.backend import row_maxes
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    x.reshape(-1)[::7] = x.reshape(-1)[3]             # ties
    x.reshape(-1)[5::101] = np.nan
    x[..., :1, :] = -np.inf if x.ndim == 3 else x[..., :1, :]
    for a in (x, x[::2], np.swapaxes(x, 0, -1)):
        got, want = row_maxes(a), a.max(axis=-1, keepdims=True)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)

"""Selecting and joining: x[...] (basic, integer-array, boolean and Tensor indices), tg.cat,
tg.stack, tg.where and masked_fill. Gradients against central differences, values against
NumPy. An index that picks an element twice must add both gradients, not keep one."""

import numpy as np
import pytest
from conftest import SHAPES, SHAPES_1D_UP, arrays, assert_forward, check_grad, floats, leaf
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygen as tg


def check_index(x, index, device):
    """x[index] matches NumPy and its gradient matches central differences."""
    check_grad(lambda t: t[index], [x], device)
    assert_forward(leaf(x, device)[index], x[index])


@given(data=st.data(), shape=SHAPES_1D_UP)
def test_basic_indexing(device, data, shape):
    """Slices (negative steps included), ints, None and Ellipsis."""
    index = data.draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    check_index(data.draw(arrays(shape)), index, device)


@pytest.mark.parametrize("index", [
    np.s_[::-1], np.s_[-1], np.s_[1:, ::-2], np.s_[..., 0], np.s_[None, :, -2:], np.s_[0, 1],
    np.s_[:, None, ::-1], np.s_[...], np.s_[-3:-1, ...]], ids=repr)
def test_basic_indexing_examples(device, index):
    check_index(np.arange(12.0).reshape(3, 4) / 7, index, device)


@given(data=st.data(), shape=SHAPES_1D_UP)
def test_integer_array_indexing(device, data, shape):
    """Integer arrays, one per indexed dim, negative entries and repeats included."""
    result = hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=5)
    index = data.draw(hnp.integer_array_indices(shape, result_shape=result))
    check_index(data.draw(arrays(shape)), index, device)


@given(data=st.data(), shape=SHAPES_1D_UP)
def test_repeated_indices_scatter_add(device, data, shape):
    """More picks than rows, so some row is picked twice: its gradient is the sum.
    The index array is 1-D or 2-D, with negative entries."""
    n = shape[0]
    idx_shape = st.tuples(st.integers(n + 1, n + 4)) | st.tuples(
        st.integers(1, 3), st.integers(n + 1, n + 3))
    idx = data.draw(hnp.arrays(np.int64, idx_shape, elements=st.integers(-n, n - 1)))
    x = data.draw(arrays(shape))
    check_index(x, idx, device)
    t = leaf(x, device)
    t[idx].sum().backward()
    counts = np.bincount((idx % n).ravel(), minlength=n).astype(np.float64)
    expected = np.broadcast_to(counts.reshape((n,) + (1,) * (len(shape) - 1)), shape)
    np.testing.assert_array_equal(t.grad.numpy(), expected)


def test_repeated_index_gradient_example(device):
    x = tg.tensor([10.0, 20.0, 30.0], device=device, requires_grad=True)
    (x[[0, 2, 0, 0]] * tg.tensor([1.0, 2.0, 3.0, 4.0], device=device)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [8.0, 0.0, 2.0])


@given(data=st.data(), shape=hnp.array_shapes(min_dims=2, max_dims=3, max_side=4))
def test_mixed_slice_and_array_index(device, data, shape):
    idx = data.draw(hnp.arrays(np.int64, st.integers(1, 5),
                               elements=st.integers(-shape[1], shape[1] - 1)))
    x = data.draw(arrays(shape))
    check_index(x, (slice(None, None, -1), idx), device)
    check_index(x, (Ellipsis, idx, slice(None)) if len(shape) == 3 else (0, idx), device)


@given(data=st.data(), shape=SHAPES_1D_UP, whole=st.booleans())
def test_boolean_mask_indexing(device, data, shape, whole):
    """A mask of the whole shape, or of the leading dim only."""
    mask = data.draw(hnp.arrays(np.bool_, shape if whole else shape[:1]))
    check_index(data.draw(arrays(shape)), mask, device)


@given(data=st.data(), shape=SHAPES_1D_UP)
def test_tensor_indices(device, data, shape):
    """Integer and boolean Tensors work as indices, alone or inside a tuple."""
    x = data.draw(arrays(shape))
    n = shape[0]
    idx = data.draw(hnp.arrays(np.int64, st.integers(1, 5), elements=st.integers(-n, n - 1)))
    mask = data.draw(hnp.arrays(np.bool_, shape))
    idx_t, mask_t = tg.tensor(idx, device=device), tg.tensor(mask, device=device)
    assert idx_t.dtype == np.int64 and mask_t.dtype == np.bool_
    for index, np_index in [(idx_t, idx), (mask_t, mask), ((idx_t, Ellipsis), (idx, ...))]:
        check_grad(lambda t, i=index: t[i], [x], device)
        assert_forward(leaf(x, device)[index], x[np_index])


def test_list_index_is_an_integer_array(device):
    x = tg.tensor([[1.0, 2.0], [3.0, 4.0]], device=device, requires_grad=True)
    x[[1, 1]].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 0.0], [2.0, 2.0]])


# ---- cat and stack ------------------------------------------------------------------------
@st.composite
def cat_cases(draw):
    """1-3 arrays that agree on every dim but `axis` (written positive or negative)."""
    shape = draw(SHAPES_1D_UP)
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    sizes = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    shapes = [shape[:axis % len(shape)] + (k,) + shape[axis % len(shape) + 1:] for k in sizes]
    return [draw(arrays(s)) for s in shapes], axis


@given(case=cat_cases(), alias=st.booleans())
def test_cat(device, case, alias):
    xs, axis = case
    fn = (lambda *ts: tg.cat(ts, dim=axis)) if alias else (lambda *ts: tg.cat(ts, axis=axis))
    check_grad(fn, xs, device)
    assert_forward(fn(*[leaf(x, device) for x in xs]), np.concatenate(xs, axis=axis))


@given(data=st.data(), shape=SHAPES, n=st.integers(1, 3), alias=st.booleans())
def test_stack(device, data, shape, n, alias):
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    xs = [data.draw(arrays(shape)) for _ in range(n)]
    fn = (lambda *ts: tg.stack(ts, dim=axis)) if alias else (lambda *ts: tg.stack(ts, axis))
    check_grad(fn, xs, device)
    assert_forward(fn(*[leaf(x, device) for x in xs]), np.stack(xs, axis=axis))


def test_cat_gradient_reaches_only_inputs_that_require_it(device):
    a = tg.tensor([1.0, 2.0], device=device, requires_grad=True)
    b = tg.tensor([3.0], device=device)
    (tg.cat([a, b]) * tg.tensor([1.0, 2.0, 3.0], device=device)).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [1.0, 2.0])
    assert b.grad is None


# ---- where and masked_fill ----------------------------------------------------------------
WHERE_SHAPES = hnp.mutually_broadcastable_shapes(
    num_shapes=3, min_dims=0, max_dims=3, min_side=1, max_side=4)


@given(data=st.data(), shapes=WHERE_SHAPES)
def test_where(device, data, shapes):
    """cond, a and b all broadcast against each other; cond gets no gradient."""
    c_shape, a_shape, b_shape = shapes.input_shapes
    cond = data.draw(hnp.arrays(np.bool_, c_shape))
    a, b = data.draw(arrays(a_shape)), data.draw(arrays(b_shape))
    cond_t = tg.tensor(cond, device=device)
    check_grad(lambda x, y: tg.where(cond_t, x, y), [a, b], device)
    assert_forward(tg.where(cond_t, leaf(a, device), leaf(b, device)), np.where(cond, a, b))


@given(data=st.data(), shape=SHAPES, value=floats(), tensor_on_left=st.booleans())
def test_where_with_a_python_number(device, data, shape, value, tensor_on_left):
    cond, x = data.draw(hnp.arrays(np.bool_, shape)), data.draw(arrays(shape))
    cond_t = tg.tensor(cond, device=device)
    if tensor_on_left:
        fn, expected = (lambda t: tg.where(cond_t, t, value)), np.where(cond, x, value)
    else:
        fn, expected = (lambda t: tg.where(cond_t, value, t)), np.where(cond, value, x)
    check_grad(fn, [x], device)
    assert_forward(fn(leaf(x, device)), expected)


@given(data=st.data(), shape=SHAPES, value=st.sampled_from([0.0, -1e9, 2.5, -np.inf]))
def test_masked_fill(device, data, shape, value):
    """The mask broadcasts to the tensor; filled entries get no gradient."""
    lead = data.draw(st.integers(0, len(shape)))  # the mask may drop leading dims
    mask_shape = tuple(1 if data.draw(st.booleans()) else n for n in shape[lead:])
    mask = data.draw(hnp.arrays(np.bool_, mask_shape))
    x = data.draw(arrays(shape))
    mask_t = tg.tensor(mask, device=device)
    if abs(value) < 10:  # a huge constant in the loss swamps the central differences
        check_grad(lambda t: t.masked_fill(mask_t, value), [x], device)
    t = leaf(x, device)
    out = t.masked_fill(mask_t, value)
    assert_forward(out, np.where(mask, value, x))
    out.sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), np.broadcast_to(~mask, shape) * 1.0)


def test_masked_fill_keeps_float32(device):
    x = tg.ones(2, 3, device=device)
    mask = tg.tensor([[True, False, True]], device=device)
    assert x.masked_fill(mask, -1e9).dtype == np.float32


@pytest.mark.parametrize("rows", [3, 65, 256, 5000])
def test_index_add_sums_repeated_rows_like_add_at(rows):
    """backend.index_add (a one-hot product for few rows, sorted runs otherwise) adds every
    value onto its row, repeats included, as np.add.at does, on top of what out holds."""
    from tinygen.backend import index_add
    rng = np.random.default_rng(0)
    idx = rng.integers(0, min(rows, 40), 3000)         # many repeats, some rows never hit
    values = rng.standard_normal((3000, 7)).astype(np.float32)
    start = rng.standard_normal((rows, 7)).astype(np.float32)
    want = start.copy()
    np.add.at(want, idx, values)
    got = index_add(start.copy(), idx, values)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)

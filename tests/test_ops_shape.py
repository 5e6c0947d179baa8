"""Matrix product and the ops that only move elements: reshape, transpose, permute, .T,
squeeze, unsqueeze, expand, flatten. Gradients against central differences, values against
NumPy. Indexing, cat, stack and where are in test_ops_index.py."""

import math

import numpy as np
import pytest
from conftest import SHAPES, arrays, assert_forward, check_grad, leaf
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygen as tg

# ---- matmul -------------------------------------------------------------------------------
SIDE = st.integers(1, 4)
BATCHES = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=2, max_side=3)
BATCH = hnp.array_shapes(min_dims=1, max_dims=2, max_side=3)


@st.composite
def matmul_shapes(draw, kind):
    m, k, n = draw(SIDE), draw(SIDE), draw(SIDE)
    if kind == "2d@2d":
        return (m, k), (k, n)
    if kind == "batched":  # batch dims broadcast against each other, size-1 dims included
        batch = draw(BATCHES).input_shapes
        return batch[0] + (m, k), batch[1] + (k, n)
    if kind == "1d@2d":
        return (k,), (k, n)
    if kind == "2d@1d":
        return (m, k), (k,)
    if kind == "1d@1d":
        return (k,), (k,)
    if kind == "nd@2d":
        return draw(BATCH) + (m, k), (k, n)
    if kind == "2d@nd":
        return (m, k), draw(BATCH) + (k, n)
    if kind == "1d@nd":
        return (k,), draw(BATCH) + (k, n)
    return draw(BATCH) + (m, k), (k,)  # "nd@1d"


MATMUL_KINDS = ["2d@2d", "batched", "1d@2d", "2d@1d", "1d@1d", "nd@2d", "2d@nd", "1d@nd",
                "nd@1d"]


@pytest.mark.parametrize("kind", MATMUL_KINDS)
@given(data=st.data())
def test_matmul(device, kind, data):
    a_shape, b_shape = data.draw(matmul_shapes(kind))
    a, b = data.draw(arrays(a_shape)), data.draw(arrays(b_shape))
    check_grad(lambda x, y: x @ y, [a, b], device)
    assert_forward(leaf(a, device) @ leaf(b, device), a @ b)


@given(data=st.data())
def test_matmul_with_one_constant_side(device, data):
    a_shape, b_shape = data.draw(matmul_shapes("batched"))
    a, b = data.draw(arrays(a_shape)), data.draw(arrays(b_shape))
    const_b, const_a = leaf(b, device, False), leaf(a, device, False)
    check_grad(lambda x: x @ const_b, [a], device)
    check_grad(lambda y: const_a @ y, [b], device)


# ---- reshape and friends ------------------------------------------------------------------
def divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def reshape_cases(draw):
    """A shape and a new shape with the same number of elements, maybe with one -1."""
    shape = draw(SHAPES)
    left, new = math.prod(shape), []
    for _ in range(draw(st.integers(0, 3))):
        d = draw(st.sampled_from(divisors(left)))
        new.append(d)
        left //= d
    new.append(left)
    new = draw(st.permutations(new))
    if draw(st.booleans()):
        new[draw(st.integers(0, len(new) - 1))] = -1
    return shape, tuple(new)


@given(data=st.data(), case=reshape_cases(), as_tuple=st.booleans())
def test_reshape(device, data, case, as_tuple):
    shape, new = case
    x = data.draw(arrays(shape))
    fn = (lambda t: t.reshape(new)) if as_tuple else (lambda t: t.reshape(*new))
    check_grad(fn, [x], device)
    assert_forward(fn(leaf(x, device)), x.reshape(new))


@st.composite
def permutations_of(draw, ndim):
    """A permutation of the axes, each written positive or negative at random."""
    perm = draw(st.permutations(range(ndim)))
    return tuple(a - ndim if draw(st.booleans()) else a for a in perm)


@given(data=st.data(), shape=SHAPES)
def test_permute(device, data, shape):
    axes = data.draw(permutations_of(len(shape)))
    check_grad(lambda t: t.permute(*axes), [data.draw(arrays(shape))], device)
    x = data.draw(arrays(shape))
    assert_forward(leaf(x, device).permute(axes), np.transpose(x, axes))


@given(data=st.data(), shape=hnp.array_shapes(min_dims=2, max_dims=3, max_side=4))
def test_transpose(device, data, shape):
    ndim = len(shape)
    a0, a1 = data.draw(st.integers(-ndim, ndim - 1)), data.draw(st.integers(-ndim, ndim - 1))
    x = data.draw(arrays(shape))
    check_grad(lambda t: t.transpose(a0, a1), [x], device)
    assert_forward(leaf(x, device).transpose(a0, a1), np.swapaxes(x, a0, a1))
    assert_forward(leaf(x, device).transpose(), np.swapaxes(x, -2, -1))


@given(data=st.data(), shape=SHAPES)
def test_T(device, data, shape):
    x = data.draw(arrays(shape))
    check_grad(lambda t: t.T, [x], device)
    assert_forward(leaf(x, device).T, x.T)


@st.composite
def squeeze_cases(draw):
    """A shape with some size-1 dims and an axis argument naming only size-1 dims."""
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=3))
    ones = [i for i, n in enumerate(shape) if n == 1]
    kind = draw(st.sampled_from(["none", "int", "tuple"] if ones else ["none"]))
    if kind == "none":
        return shape, None
    chosen = draw(st.lists(st.sampled_from(ones), min_size=1, unique=True))
    chosen = [a - len(shape) if draw(st.booleans()) else a for a in chosen]
    return shape, chosen[0] if kind == "int" else tuple(chosen)


@given(data=st.data(), case=squeeze_cases(), alias=st.booleans())
def test_squeeze(device, data, case, alias):
    shape, axis = case
    x = data.draw(arrays(shape))
    fn = (lambda t: t.squeeze(dim=axis)) if alias else (lambda t: t.squeeze(axis))
    check_grad(fn, [x], device)
    assert_forward(fn(leaf(x, device)), np.squeeze(x, axis))


@given(data=st.data(), shape=SHAPES)
def test_unsqueeze(device, data, shape):
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    x = data.draw(arrays(shape))
    check_grad(lambda t: t.unsqueeze(axis), [x], device)
    assert_forward(leaf(x, device).unsqueeze(axis), np.expand_dims(x, axis))


def test_unsqueeze_dim_alias(device):
    assert tg.zeros(2, 3, device=device).unsqueeze(dim=1).shape == (2, 1, 3)


@st.composite
def expand_cases(draw):
    """(input shape, target shape, expand argument): the input is a suffix of the target
    with some dims shrunk to 1; the argument writes some kept dims as -1."""
    target = draw(SHAPES)
    ndim = draw(st.integers(0, len(target)))
    lead = len(target) - ndim
    shape = tuple(1 if draw(st.booleans()) else n for n in target[lead:])
    arg = tuple(-1 if i >= lead and shape[i - lead] == n and draw(st.booleans()) else n
                for i, n in enumerate(target))
    return shape, target, arg


@given(data=st.data(), case=expand_cases())
def test_expand(device, data, case):
    shape, target, arg = case
    x = data.draw(arrays(shape))
    check_grad(lambda t: t.expand(*arg), [x], device)
    assert_forward(leaf(x, device).expand(arg), np.broadcast_to(x, target))


@given(data=st.data(), shape=SHAPES)
def test_flatten(device, data, shape):
    ndim = len(shape)
    x = data.draw(arrays(shape))
    if ndim == 0:
        assert_forward(leaf(x, device).flatten(), x.reshape(1))
        return
    start = data.draw(st.integers(0, ndim - 1))
    end = data.draw(st.integers(start, ndim - 1))
    end_arg = end - ndim if data.draw(st.booleans()) else end
    expected = x.reshape(shape[:start] + (-1,) + shape[end + 1:])
    check_grad(lambda t: t.flatten(start, end_arg), [x], device)
    assert_forward(leaf(x, device).flatten(start, end_arg), expected)
    assert_forward(leaf(x, device).flatten(), x.reshape(-1))


def test_view_is_reshape(device):
    x = tg.arange(6, device=device)
    assert x.view(2, 3).shape == (2, 3)
    np.testing.assert_array_equal(x.view(3, -1).numpy(), np.arange(6).reshape(3, 2))

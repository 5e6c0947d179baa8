"""The tensor ops of issue #12 as one table of cases, each checked the same way:
gradcheck in float64 on hypothesis-drawn inputs (every device), and the forward value, the
dtype and the gradient against PyTorch at float32 (skipped without torch).

A case is data: (name, the Function that holds its backward — or None for a composition
of other ops, which needs no backward of its own —, the tinygen callable, the input
strategy, the torch reference). The table is meant to be folded into the shared op harness
(tests/conftest.py, branch arch-ops) as it stands."""

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pytest
from conftest import SHAPES, SHAPES_1D_UP, arrays, check_grad, distinct_arrays, floats
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygen as tg
from tinygen import ops


class Case(NamedTuple):
    name: str
    function: type | None  # the Function with the backward; None: a composition
    fn: Callable           # (*tinygen tensors) -> tensor
    inputs: st.SearchStrategy  # -> list of float64 arrays
    ref: Callable          # (*torch tensors) -> torch tensor


def one(shapes=SHAPES, elements=None):
    return shapes.flatmap(lambda s: arrays(s, elements)).map(lambda a: [a])


def two(elements=None, distinct=False):
    """Two arrays of broadcastable shapes."""
    def draw(shapes):
        make = distinct_arrays if distinct else (lambda s: arrays(s, elements))
        return st.tuples(*(make(s) for s in shapes.input_shapes)).map(list)
    return hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                             max_side=3).flatmap(draw)


def matrix(min_side=1):
    return hnp.array_shapes(min_dims=2, max_dims=3, min_side=min_side, max_side=4)


def off_integers():
    """Values 0.15-0.35 past an integer: floor/round/... are smooth there."""
    return floats().map(lambda v: np.floor(v) + 0.25 + 0.1 * np.sin(v))


def _checkers(x):
    """A fixed boolean mask shaped like x (so a perturbed x selects the same entries)."""
    return np.arange(int(np.prod(x.shape))).reshape(tuple(x.shape)) % 2 == 0


def _torch(a):
    import torch

    return torch.tensor(a)


SCATTER_INDEX = np.array([[0, 1, 1, 4, 0], [2, 2, 0, 1, 1]])
ANGLE = floats(-0.9, 0.9)
POS = floats(0.2, 3.0)
AWAY = st.one_of(floats(-3, -0.3), floats(0.3, 3))


CASES = [
    # ---- elementwise math -------------------------------------------------------------
    Case("sin", ops.Sin, lambda x: x.sin(), one(), lambda x: x.sin()),
    Case("cos", ops.Cos, lambda x: tg.cos(x), one(), lambda x: x.cos()),
    Case("tan", None, lambda x: x.tan(), one(elements=floats(-1.2, 1.2)), lambda x: x.tan()),
    Case("asin", ops.Asin, lambda x: x.asin(), one(elements=ANGLE), lambda x: x.asin()),
    Case("acos", ops.Acos, lambda x: x.acos(), one(elements=ANGLE), lambda x: x.acos()),
    Case("atan", ops.Atan, lambda x: x.atan(), one(), lambda x: x.atan()),
    Case("atan2", ops.Atan2, lambda y, x: y.atan2(x), two(AWAY), lambda y, x: y.atan2(x)),
    Case("sinh", None, lambda x: x.sinh(), one(), lambda x: x.sinh()),
    Case("cosh", None, lambda x: tg.cosh(x), one(), lambda x: x.cosh()),
    Case("rsqrt", None, lambda x: x.rsqrt(), one(elements=POS), lambda x: x.rsqrt()),
    Case("square", None, lambda x: x.square(), one(), lambda x: x.square()),
    Case("log2", None, lambda x: x.log2(), one(elements=POS), lambda x: x.log2()),
    Case("log10", None, lambda x: tg.log10(x), one(elements=POS), lambda x: x.log10()),
    Case("log1p", ops.Log1p, lambda x: x.log1p(), one(elements=floats(-0.5, 3)),
         lambda x: x.log1p()),
    Case("expm1", ops.Expm1, lambda x: x.expm1(), one(), lambda x: x.expm1()),
    Case("exp2", None, lambda x: x.exp2(), one(), lambda x: x.exp2()),
    Case("floor", ops.Floor, lambda x: x.floor(), one(elements=off_integers()),
         lambda x: x.floor()),
    Case("ceil", ops.Ceil, lambda x: x.ceil(), one(elements=off_integers()),
         lambda x: x.ceil()),
    Case("round", ops.Round, lambda x: x.round(), one(elements=off_integers()),
         lambda x: x.round()),
    Case("trunc", ops.Trunc, lambda x: x.trunc(), one(elements=off_integers()),
         lambda x: x.trunc()),
    Case("sign", ops.Sign, lambda x: x.sign(), one(elements=AWAY), lambda x: x.sign()),
    Case("maximum", ops.Maximum, lambda a, b: tg.maximum(a, b), two(distinct=True),
         lambda a, b: a.maximum(b)),
    Case("minimum", ops.Minimum, lambda a, b: a.minimum(b), two(distinct=True),
         lambda a, b: a.minimum(b)),
    Case("clamp(tensor bounds)", None, lambda x, lo: x.clamp(lo, lo + 1),
         two().filter(lambda ab: np.all(np.abs(ab[0] - ab[1]) > 0.01) and np.all(
             np.abs(ab[0] - ab[1] - 1) > 0.01)), lambda x, lo: x.clamp(lo, lo + 1)),
    Case("lerp", None, lambda a, b: a.lerp(b, 0.3), two(), lambda a, b: a.lerp(b, 0.3)),
    Case("logaddexp", None, lambda a, b: a.logaddexp(b), two(distinct=True),
         lambda a, b: a.logaddexp(b)),
    Case("pow(tensor, tensor)", ops.Pow, lambda a, b: a.abs() ** b, two(AWAY),
         lambda a, b: a.abs() ** b),
    Case("rpow", ops.Pow, lambda x: 2.5 ** x, one(), lambda x: 2.5 ** x),
    Case("remainder", None, lambda a, b: a % b, two(AWAY).filter(lambda ab: np.all(
        np.abs(np.remainder(*ab)) > 1e-3) and np.all(np.abs(np.remainder(*ab) - np.abs(ab[1]))
                                                      > 1e-3)),
         lambda a, b: a % b),
    # ---- reductions, scans, orderings -------------------------------------------------
    Case("prod(axis)", ops.Prod, lambda x: x.prod(-1), one(SHAPES_1D_UP),
         lambda x: x.prod(-1)),
    Case("prod()", ops.Prod, lambda x: x.prod(), one(), lambda x: x.prod()),
    Case("prod with zeros", ops.Prod, lambda x: (x * _checkers(x)).prod(0),
         one(SHAPES_1D_UP), lambda x: (x * _torch(_checkers(x))).prod(0)),
    Case("logsumexp", None, lambda x: x.logsumexp(-1), one(SHAPES_1D_UP),
         lambda x: x.logsumexp(-1)),
    Case("norm", None, lambda x: x.norm(dim=-1), one(SHAPES_1D_UP, AWAY),
         lambda x: x.norm(dim=-1)),
    Case("norm(p=1)", None, lambda x: tg.norm(x, 1), one(elements=AWAY),
         lambda x: x.norm(1)),
    Case("std(correction=1)", None, lambda x: x.std(0, correction=1),
         hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4).flatmap(
             distinct_arrays).map(lambda a: [a]), lambda x: x.std(0, correction=1)),
    Case("cumsum", ops.Cumsum, lambda x: x.cumsum(0), one(SHAPES_1D_UP),
         lambda x: x.cumsum(0)),
    Case("cumsum(-1)", ops.Cumsum, lambda x: tg.cumsum(x, -1), one(SHAPES_1D_UP),
         lambda x: x.cumsum(-1)),
    Case("cumprod", ops.Cumprod, lambda x: x.cumprod(-1), one(SHAPES_1D_UP),
         lambda x: x.cumprod(-1)),
    Case("cumprod with zeros", ops.Cumprod, lambda x: (x * _checkers(x)).cumprod(0),
         one(SHAPES_1D_UP), lambda x: (x * _torch(_checkers(x))).cumprod(0)),
    Case("cummax", ops.Gather, lambda x: x.cummax(-1)[0], SHAPES_1D_UP.flatmap(
        distinct_arrays).map(lambda a: [a]), lambda x: x.cummax(-1)[0]),
    Case("cummin", ops.Gather, lambda x: tg.cummin(x, 0)[0], SHAPES_1D_UP.flatmap(
        distinct_arrays).map(lambda a: [a]), lambda x: x.cummin(0)[0]),
    Case("sort", ops.Gather, lambda x: x.sort(-1)[0], SHAPES_1D_UP.flatmap(
        distinct_arrays).map(lambda a: [a]), lambda x: x.sort(-1)[0]),
    Case("sort(descending)", ops.Gather, lambda x: x.sort(0, descending=True)[0],
         SHAPES_1D_UP.flatmap(distinct_arrays).map(lambda a: [a]),
         lambda x: x.sort(0, descending=True)[0]),
    Case("topk", ops.Gather, lambda x: x.topk(1)[0], SHAPES_1D_UP.flatmap(
        distinct_arrays).map(lambda a: [a]), lambda x: x.topk(1)[0]),
    # ---- indexing -----------------------------------------------------------------------
    Case("gather", ops.Gather, lambda x, i: x.gather(1, i),
         hnp.arrays(np.float64, (3, 4), elements=floats()).map(lambda a: [a]),
         lambda x, i: x.gather(1, i)),
    Case("scatter_reduce(amax)", ops.ScatterMax,
         lambda x, s: x.scatter_reduce(1, SCATTER_INDEX, s, "amax"),
         st.tuples(distinct_arrays((3, 5)), distinct_arrays((2, 5)).map(lambda a: a + 0.025))
         .map(list), lambda x, s: x.scatter_reduce(1, _torch(SCATTER_INDEX), s, "amax")),
    Case("scatter_reduce(amin, no self)", ops.ScatterMax,
         lambda x, s: x.scatter_reduce(1, SCATTER_INDEX, s, "amin", include_self=False),
         st.tuples(distinct_arrays((3, 5)), distinct_arrays((2, 5)).map(lambda a: a + 0.025))
         .map(list), lambda x, s: x.scatter_reduce(1, _torch(SCATTER_INDEX), s, "amin",
                                                   include_self=False)),
    Case("scatter_reduce(mean)", ops.ScatterAdd,
         lambda x, s: x.scatter_reduce(1, SCATTER_INDEX, s, "mean"),
         st.tuples(arrays((3, 5)), arrays((2, 5))).map(list),
         lambda x, s: x.scatter_reduce(1, _torch(SCATTER_INDEX), s, "mean")),
    Case("index_select", ops.GetItem, lambda x: x.index_select(-1, tg.tensor([0, 0, 1])),
         one(hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4)),
         lambda x: x.index_select(-1, __import__("torch").tensor([0, 0, 1]))),
    Case("masked_select", ops.GetItem, lambda x: x.masked_select(tg.tensor(_checkers(x))),
         one(), lambda x: x.masked_select(_torch(_checkers(x)))),
    # ---- shape --------------------------------------------------------------------------
    Case("flip", None, lambda x: x.flip(-1), one(SHAPES_1D_UP), lambda x: x.flip(-1)),
    Case("flip(0, -1)", None, lambda x: tg.flip(x, (0, -1)), one(matrix()),
         lambda x: x.flip(0, -1)),
    Case("roll", None, lambda x: x.roll(2, 0), one(SHAPES_1D_UP), lambda x: x.roll(2, 0)),
    Case("roll(flat)", None, lambda x: x.roll(-1), one(), lambda x: x.roll(-1)),
    Case("repeat", None, lambda x: x.repeat(2, *[1] * x.ndim), one(),
         lambda x: x.repeat(2, *[1] * x.ndim)),
    Case("tile", None, lambda x: x.tile((2,)), one(SHAPES_1D_UP), lambda x: x.tile((2,))),
    Case("repeat_interleave", ops.GetItem, lambda x: x.repeat_interleave(2, 0),
         one(SHAPES_1D_UP), lambda x: x.repeat_interleave(2, 0)),
    Case("split", None, lambda x: x.split(2, -1)[-1], one(SHAPES_1D_UP),
         lambda x: x.split(2, -1)[-1]),
    Case("chunk", None, lambda x: tg.cat(x.chunk(2, 0)[::-1]), one(SHAPES_1D_UP),
         lambda x: __import__("torch").cat(x.chunk(2, 0)[::-1])),
    Case("unbind", None, lambda x: x.unbind(0)[-1], one(SHAPES_1D_UP),
         lambda x: x.unbind(0)[-1]),
    Case("tril", None, lambda x: x.tril(), one(matrix()), lambda x: x.tril()),
    Case("triu(1)", None, lambda x: tg.triu(x, 1), one(matrix()), lambda x: x.triu(1)),
    Case("tril(-1)", None, lambda x: x.tril(-1), one(matrix()), lambda x: x.tril(-1)),
    Case("diagonal", ops.GetItem, lambda x: x.diagonal(), one(matrix()),
         lambda x: x.diagonal().movedim(-1, -1)),
    Case("diag(1-d)", ops.ScatterAdd, lambda x: x.diag(1),
         one(hnp.array_shapes(min_dims=1, max_dims=1, max_side=4)), lambda x: x.diag(1)),
    Case("diag(2-d)", ops.GetItem, lambda x: x.diag(-1), one(hnp.array_shapes(
        min_dims=2, max_dims=2, min_side=2, max_side=4)), lambda x: x.diag(-1)),
    Case("flatten(1)", None, lambda x: x.flatten(1), one(matrix()), lambda x: x.flatten(1)),
    Case("unflatten", None, lambda x: x.reshape(-1).unflatten(0, (1, -1)), one(),
         lambda x: x.reshape(-1).unflatten(0, (1, -1))),
    Case("narrow", None, lambda x: x.narrow(-1, 0, 1), one(SHAPES_1D_UP),
         lambda x: x.narrow(-1, 0, 1)),
    Case("movedim", None, lambda x: x.movedim(0, -1), one(SHAPES_1D_UP),
         lambda x: x.movedim(0, -1)),
    Case("broadcast_to", None, lambda x: x.broadcast_to((2,) + x.shape), one(),
         lambda x: x.broadcast_to((2,) + x.shape)),
    Case("outer", None, lambda a, b: tg.outer(a, b), st.tuples(*[hnp.arrays(
        np.float64, st.integers(1, 4), elements=floats())] * 2).map(list),
         lambda a, b: __import__("torch").outer(a, b)),
    # ---- einsum ---------------------------------------------------------------------
    Case("einsum(attention)", ops.Einsum, lambda q, k: tg.einsum("bhqd,bhkd->bhqk", q, k),
         st.tuples(*[arrays((2, 1, 3, 2))] * 2).map(list),
         lambda q, k: __import__("torch").einsum("bhqd,bhkd->bhqk", q, k)),
    Case("einsum(bilinear)", ops.Einsum,
         lambda x, w, y: tg.einsum("bi,ij,bj->b", x, w, y),
         st.tuples(arrays((2, 3)), arrays((3, 4)), arrays((2, 4))).map(list),
         lambda x, w, y: __import__("torch").einsum("bi,ij,bj->b", x, w, y)),
    Case("einsum(batched outer)", ops.Einsum, lambda a, b: tg.einsum("bi,bj->bij", a, b),
         st.tuples(arrays((2, 3)), arrays((2, 4))).map(list),
         lambda a, b: __import__("torch").einsum("bi,bj->bij", a, b)),
    Case("einsum(implicit, sum out)", ops.Einsum, lambda a, b: tg.einsum("ij,jk", a, b),
         st.tuples(arrays((2, 3)), arrays((3, 4))).map(list),
         lambda a, b: __import__("torch").einsum("ij,jk", a, b)),
    Case("einsum(broadcast back)", ops.Einsum, lambda a: tg.einsum("ijk->j", a),
         st.tuples(arrays((2, 3, 2))).map(list),
         lambda a: __import__("torch").einsum("ijk->j", a)),
]

INTEGER_INPUT = {"gather": np.array([[0, 0, 3, 1], [2, 1, 0, 0], [3, 3, 3, 3]])}


def _inputs(case, arrays_, lib):
    extra = [INTEGER_INPUT[case.name]] if case.name in INTEGER_INPUT else []
    return arrays_, extra


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@given(data=st.data())
def test_gradcheck(device, case, data):
    arrays_ = data.draw(case.inputs)
    extra = [tg.tensor(a, device=device) for a in _inputs(case, arrays_, tg)[1]]
    check_grad(lambda *ts: case.fn(*ts, *extra), arrays_, device)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@given(data=st.data())
def test_against_pytorch(device, case, data):
    """float32 in: the same values (PyTorch's float32 tolerances), dtype and gradients."""
    torch = pytest.importorskip("torch")
    arrays_ = [a.astype(np.float32) for a in data.draw(case.inputs)]
    extra = _inputs(case, arrays_, tg)[1]
    ours = [tg.tensor(a, device=device, requires_grad=True) for a in arrays_]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays_]
    out = case.fn(*ours, *[tg.tensor(e, device=device) for e in extra])
    ref = case.ref(*theirs, *[torch.tensor(e) for e in extra])
    assert out.shape == tuple(ref.shape) and out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1.3e-6 * 10,
                               atol=1e-5)
    if out.numel():
        w = np.random.default_rng(0).standard_normal(out.shape).astype(np.float32)
        (out * tg.tensor(w, device=device)).sum().backward()
        (ref * torch.tensor(w)).sum().backward()
        for a, b in zip(ours, theirs):
            got = np.zeros(a.shape, np.float32) if a.grad is None else a.grad.numpy()
            want = np.zeros(a.shape, np.float32) if b.grad is None else b.grad.numpy()
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)

"""The tensor API of issue #12 as cases of the one op harness (tests/harness.py): each
draws its inputs whole (`env.leaves(strategy)`), and gives the same maths in PyTorch
(`torch=`), which check (e) compares at float32; the NumPy formula of a Function's output,
where one is short, is in NUMPY below. TENSOR_CASES joins CASES in tests/op_cases.py, so
every case here also gets gradcheck, float32 and device checks.

table(name, fn, inputs, torch_ref): fn(*leaves) -> Tensor; inputs: a strategy drawing a
list of float64 arrays; torch_ref(*torch leaves) -> torch.Tensor."""

import math
from functools import partial

import numpy as np
from conftest import SHAPES, SHAPES_1D_UP, arrays, distinct_arrays, floats
from harness import Case
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygen as tg


def drawn_case(env, fn, inputs):
    return env.leaves(inputs), fn, None


def table(name, fn, inputs, torch_ref, **options):
    return Case(name, partial(drawn_case, fn=fn, inputs=inputs), torch=torch_ref,
                reference=NUMPY.get(name), **options)


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


def _t():
    import torch

    return torch


def _torch(a):
    return _t().tensor(a)


def running_with_ties(x, op, dim):
    """values + indices of cummax/cummin over x with every entry doubled along dim: exact
    ties that move together when gradcheck perturbs x (so the output stays
    differentiable), and the forward checks that a tie goes to the latest position."""
    doubled = x.repeat_interleave(2, dim)
    values, indices = getattr(doubled, op)(dim)
    return values + indices


GATHER_INDEX = np.array([[0, 0, 3, 1], [2, 1, 0, 0], [3, 3, 3, 3]])
UNIQUE_INDEX = np.array([[4, 0, 2, 1, 3], [0, 1, 2, 3, 4]])  # scatter: one source per target
SCATTER_INDEX = np.array([[0, 1, 1, 4, 0], [2, 2, 0, 1, 1]])


def with_zeros(x, s):
    """x (3, 5), src (2, 5) with zeros for scatter_reduce "prod" over SCATTER_INDEX: a lone
    zero in a slot, two zeros in one slot, a zero in x, a zero of x meeting one of src."""
    x, s = np.array(x), np.array(s)
    s[0, 1] = s[1, 3] = s[1, 4] = s[1, 0] = 0
    x[0, 0] = x[1, 2] = 0
    return [x, s]


ANGLE = floats(-0.9, 0.9)
POS = floats(0.2, 3.0)
AWAY = st.one_of(floats(-3, -0.3), floats(0.3, 3))


# NumPy formulas of the outputs (check (b)), by case name
NUMPY = {
    "sin": np.sin, "cos": np.cos, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan,
    "atan2": np.arctan2, "log1p": np.log1p, "expm1": np.expm1, "floor": np.floor,
    "ceil": np.ceil, "round": np.round, "trunc": np.trunc, "sign": np.sign,
    "maximum": np.maximum, "minimum": np.minimum, "erf": np.vectorize(math.erf),
    "prod(axis)": lambda x: np.prod(x, -1), "prod()": np.prod,
    "min(axis)": lambda x: np.min(x, 0), "min()": np.min,
    "cumsum": lambda x: np.cumsum(x, 0), "cumprod": lambda x: np.cumprod(x, -1),
    "sort": lambda x: np.sort(x, -1),
    "gather": lambda x: np.take_along_axis(x, GATHER_INDEX, 1),
    "einsum(attention)": lambda q, k: np.einsum("bhqd,bhkd->bhqk", q, k),
    "einsum(bilinear)": lambda x, w, y: np.einsum("bi,ij,bj->b", x, w, y),
    "einsum(ii->i)": lambda x: np.diagonal(x).copy(), "einsum(ii->)": np.trace,
    "einsum(...ij,...jk->...ik)": np.matmul,
}


TENSOR_CASES = [
    # ---- elementwise math -------------------------------------------------------------
    table("sin", lambda x: x.sin(), one(), lambda x: x.sin()),
    table("cos", lambda x: tg.cos(x), one(), lambda x: x.cos()),
    table("tan", lambda x: x.tan(), one(elements=floats(-1.2, 1.2)), lambda x: x.tan()),
    table("asin", lambda x: x.asin(), one(elements=ANGLE), lambda x: x.asin()),
    table("acos", lambda x: x.acos(), one(elements=ANGLE), lambda x: x.acos()),
    table("atan", lambda x: x.atan(), one(), lambda x: x.atan()),
    table("atan2", lambda y, x: y.atan2(x), two(AWAY), lambda y, x: y.atan2(x)),
    table("sinh", lambda x: x.sinh(), one(), lambda x: x.sinh()),
    table("cosh", lambda x: tg.cosh(x), one(), lambda x: x.cosh()),
    table("rsqrt", lambda x: x.rsqrt(), one(elements=POS), lambda x: x.rsqrt()),
    table("square", lambda x: x.square(), one(), lambda x: x.square()),
    table("log2", lambda x: x.log2(), one(elements=POS), lambda x: x.log2()),
    table("log10", lambda x: tg.log10(x), one(elements=POS), lambda x: x.log10()),
    table("log1p", lambda x: x.log1p(), one(elements=floats(-0.5, 3)),
          lambda x: x.log1p()),
    table("expm1", lambda x: x.expm1(), one(), lambda x: x.expm1()),
    table("exp2", lambda x: x.exp2(), one(), lambda x: x.exp2()),
    table("floor", lambda x: x.floor(), one(elements=off_integers()),
          lambda x: x.floor()),
    table("ceil", lambda x: x.ceil(), one(elements=off_integers()),
          lambda x: x.ceil()),
    table("round", lambda x: x.round(), one(elements=off_integers()),
          lambda x: x.round()),
    table("trunc", lambda x: x.trunc(), one(elements=off_integers()),
          lambda x: x.trunc()),
    table("erf", lambda x: x.erf(), one(), lambda x: x.erf()),
    table("sign", lambda x: x.sign(), one(elements=AWAY), lambda x: x.sign()),
    table("maximum", lambda a, b: tg.maximum(a, b), two(distinct=True),
          lambda a, b: a.maximum(b)),
    table("minimum", lambda a, b: a.minimum(b), two(distinct=True),
          lambda a, b: a.minimum(b)),
    table("clamp(tensor bounds)", lambda x, lo: x.clamp(lo, lo + 1),
          two().filter(lambda ab: np.all(np.abs(ab[0] - ab[1]) > 0.01) and np.all(
             np.abs(ab[0] - ab[1] - 1) > 0.01)), lambda x, lo: x.clamp(lo, lo + 1)),
    table("lerp", lambda a, b: a.lerp(b, 0.3), two(), lambda a, b: a.lerp(b, 0.3)),
    table("logaddexp", lambda a, b: a.logaddexp(b), two(distinct=True),
          lambda a, b: a.logaddexp(b)),
    table("pow(tensor, tensor)", lambda a, b: a.abs() ** b, two(AWAY),
          lambda a, b: a.abs() ** b),
    table("rpow", lambda x: 2.5 ** x, one(), lambda x: 2.5 ** x),
    table("remainder", lambda a, b: a % b, two(AWAY).filter(lambda ab: np.all(
        np.abs(np.remainder(*ab)) > 1e-3) and np.all(np.abs(np.remainder(*ab) - np.abs(ab[1]))
                                                      > 1e-3)),
          lambda a, b: a % b),
    # ---- reductions, scans, orderings -------------------------------------------------
    table("prod(axis)", lambda x: x.prod(-1), one(SHAPES_1D_UP),
          lambda x: x.prod(-1)),
    table("prod()", lambda x: x.prod(), one(), lambda x: x.prod()),
    table("prod with zeros", lambda x: (x * _checkers(x)).prod(0),
          one(SHAPES_1D_UP), lambda x: (x * _torch(_checkers(x))).prod(0)),
    table("logsumexp", lambda x: x.logsumexp(-1), one(SHAPES_1D_UP),
          lambda x: x.logsumexp(-1)),
    table("norm", lambda x: x.norm(dim=-1), one(SHAPES_1D_UP, AWAY),
          lambda x: x.norm(dim=-1)),
    table("norm(p=1)", lambda x: tg.norm(x, 1), one(elements=AWAY),
          lambda x: x.norm(1)),
    table("std(correction=1)", lambda x: x.std(0, correction=1),
          hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4).flatmap(
             distinct_arrays).map(lambda a: [a]), lambda x: x.std(0, correction=1)),
    table("cumsum", lambda x: x.cumsum(0), one(SHAPES_1D_UP),
          lambda x: x.cumsum(0)),
    table("cumsum(-1)", lambda x: tg.cumsum(x, -1), one(SHAPES_1D_UP),
          lambda x: x.cumsum(-1)),
    table("cumprod", lambda x: x.cumprod(-1), one(SHAPES_1D_UP),
          lambda x: x.cumprod(-1)),
    table("cumprod with zeros", lambda x: (x * _checkers(x)).cumprod(0),
          one(SHAPES_1D_UP), lambda x: (x * _torch(_checkers(x))).cumprod(0)),
    table("cummax", lambda x: x.cummax(-1)[0], SHAPES_1D_UP.flatmap(
        distinct_arrays).map(lambda a: [a]), lambda x: x.cummax(-1)[0]),
    table("cummin", lambda x: tg.cummin(x, 0)[0], SHAPES_1D_UP.flatmap(
        distinct_arrays).map(lambda a: [a]), lambda x: x.cummin(0)[0]),
    # ties: the latest position wins (PyTorch); the indices enter the output
    table("cummax(ties)", lambda x: running_with_ties(x, "cummax", -1),
          SHAPES_1D_UP.flatmap(distinct_arrays).map(lambda a: [a]),
          lambda x: running_with_ties(x, "cummax", -1)),
    table("cummin(ties)", lambda x: running_with_ties(x, "cummin", 0),
          SHAPES_1D_UP.flatmap(distinct_arrays).map(lambda a: [a]),
          lambda x: running_with_ties(x, "cummin", 0)),
    table("min(axis)", lambda x: x.min(0), SHAPES_1D_UP.flatmap(distinct_arrays).map(
        lambda a: [a]), lambda x: x.amin(0)),
    table("min()", lambda x: x.min(), SHAPES.flatmap(distinct_arrays).map(lambda a: [a]),
          lambda x: x.min()),
    table("sort", lambda x: x.sort(-1)[0], SHAPES_1D_UP.flatmap(
        distinct_arrays).map(lambda a: [a]), lambda x: x.sort(-1)[0]),
    table("sort(descending)", lambda x: x.sort(0, descending=True)[0],
          SHAPES_1D_UP.flatmap(distinct_arrays).map(lambda a: [a]),
          lambda x: x.sort(0, descending=True)[0]),
    table("topk", lambda x: x.topk(1)[0], SHAPES_1D_UP.flatmap(
        distinct_arrays).map(lambda a: [a]), lambda x: x.topk(1)[0]),
    # ---- indexing -----------------------------------------------------------------------
    table("gather", lambda x: x.gather(1, GATHER_INDEX),
          hnp.arrays(np.float64, (3, 4), elements=floats()).map(lambda a: [a]),
          lambda x: x.gather(1, _torch(GATHER_INDEX))),
    # repeated targets add up (SCATTER_INDEX sends two entries of a row to one place)
    table("scatter_add(repeated)", lambda x, s: x.scatter_add(1, SCATTER_INDEX, s),
          st.tuples(arrays((3, 5)), arrays((2, 5))).map(list),
          lambda x, s: x.scatter_add(1, _torch(SCATTER_INDEX), s)),
    table("scatter", lambda x, s: x.scatter(1, UNIQUE_INDEX, s),
          st.tuples(arrays((3, 5)), arrays((2, 5))).map(list),
          lambda x, s: x.scatter(1, _torch(UNIQUE_INDEX), s)),
    table("scatter_reduce(amax)", lambda x, s: x.scatter_reduce(1, SCATTER_INDEX, s, "amax"),
          st.tuples(distinct_arrays((3, 5)), distinct_arrays((2, 5)).map(lambda a: a + 0.025))
          .map(list), lambda x, s: x.scatter_reduce(1, _torch(SCATTER_INDEX), s, "amax")),
    table("scatter_reduce(amin, no self)", lambda x, s: x.scatter_reduce(1, SCATTER_INDEX, s, "amin", include_self=False),
          st.tuples(distinct_arrays((3, 5)), distinct_arrays((2, 5)).map(lambda a: a + 0.025))
          .map(list), lambda x, s: x.scatter_reduce(1, _torch(SCATTER_INDEX), s, "amin",
                                                   include_self=False)),
    table("scatter_reduce(mean)", lambda x, s: x.scatter_reduce(1, SCATTER_INDEX, s, "mean"),
          st.tuples(arrays((3, 5)), arrays((2, 5))).map(list),
          lambda x, s: x.scatter_reduce(1, _torch(SCATTER_INDEX), s, "mean")),
    table("scatter_reduce(prod)", lambda x, s: x.scatter_reduce(1, SCATTER_INDEX, s, "prod"),
          st.tuples(arrays((3, 5), AWAY), arrays((2, 5), AWAY)).map(list),
          lambda x, s: x.scatter_reduce(1, _torch(SCATTER_INDEX), s, "prod")),
    table("scatter_reduce(prod, no self)", lambda x, s: tg.scatter_reduce(
        x, 1, SCATTER_INDEX, s, "prod", include_self=False),
          st.tuples(arrays((3, 5), AWAY), arrays((2, 5), AWAY)).map(list),
          lambda x, s: x.scatter_reduce(1, _torch(SCATTER_INDEX), s, "prod",
                                        include_self=False)),
    # zeros in the product: one per slot, two per slot, in x, in x and src together
    table("scatter_reduce(prod, zeros)", lambda x, s: x.scatter_reduce(
        1, SCATTER_INDEX, s, "prod"), st.tuples(arrays((3, 5), AWAY), arrays(
            (2, 5), AWAY)).map(lambda xs: with_zeros(*xs)),
          lambda x, s: x.scatter_reduce(1, _torch(SCATTER_INDEX), s, "prod")),
    table("scatter_reduce(prod, zeros, no self)", lambda x, s: x.scatter_reduce(
        1, SCATTER_INDEX, s, "prod", include_self=False), st.tuples(
            arrays((3, 5), AWAY), arrays((2, 5), AWAY)).map(lambda xs: with_zeros(*xs)),
          lambda x, s: x.scatter_reduce(1, _torch(SCATTER_INDEX), s, "prod",
                                        include_self=False)),
    table("index_select", lambda x: x.index_select(-1, tg.tensor([0, 0, 1])),
          one(hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4)),
          lambda x: x.index_select(-1, _t().tensor([0, 0, 1]))),
    table("masked_select", lambda x: x.masked_select(tg.tensor(_checkers(x))),
          one(), lambda x: x.masked_select(_torch(_checkers(x)))),
    # ---- shape --------------------------------------------------------------------------
    table("flip", lambda x: x.flip(-1), one(SHAPES_1D_UP), lambda x: x.flip(-1)),
    table("flip(0, -1)", lambda x: tg.flip(x, (0, -1)), one(matrix()),
          lambda x: x.flip(0, -1)),
    table("roll", lambda x: x.roll(2, 0), one(SHAPES_1D_UP), lambda x: x.roll(2, 0)),
    table("roll(flat)", lambda x: x.roll(-1), one(), lambda x: x.roll(-1)),
    table("repeat", lambda x: x.repeat(2, *[1] * x.ndim), one(),
          lambda x: x.repeat(2, *[1] * x.ndim)),
    table("tile", lambda x: x.tile((2,)), one(SHAPES_1D_UP), lambda x: x.tile((2,))),
    table("repeat_interleave", lambda x: x.repeat_interleave(2, 0),
          one(SHAPES_1D_UP), lambda x: x.repeat_interleave(2, 0)),
    table("split", lambda x: x.split(2, -1)[-1], one(SHAPES_1D_UP),
          lambda x: x.split(2, -1)[-1]),
    table("chunk", lambda x: tg.cat(x.chunk(2, 0)[::-1]), one(SHAPES_1D_UP),
          lambda x: _t().cat(x.chunk(2, 0)[::-1])),
    table("unbind", lambda x: x.unbind(0)[-1], one(SHAPES_1D_UP),
          lambda x: x.unbind(0)[-1]),
    table("tril", lambda x: x.tril(), one(matrix()), lambda x: x.tril()),
    table("triu(1)", lambda x: tg.triu(x, 1), one(matrix()), lambda x: x.triu(1)),
    table("tril(-1)", lambda x: x.tril(-1), one(matrix()), lambda x: x.tril(-1)),
    table("diagonal", lambda x: x.diagonal(), one(matrix()),
          lambda x: x.diagonal().movedim(-1, -1)),
    table("diag(1-d)", lambda x: x.diag(1),
          one(hnp.array_shapes(min_dims=1, max_dims=1, max_side=4)), lambda x: x.diag(1)),
    table("diag(2-d)", lambda x: x.diag(-1), one(hnp.array_shapes(
        min_dims=2, max_dims=2, min_side=2, max_side=4)), lambda x: x.diag(-1)),
    table("flatten(1)", lambda x: x.flatten(1), one(matrix()), lambda x: x.flatten(1)),
    table("unflatten", lambda x: x.reshape(-1).unflatten(0, (1, -1)), one(),
          lambda x: x.reshape(-1).unflatten(0, (1, -1))),
    table("narrow", lambda x: x.narrow(-1, 0, 1), one(SHAPES_1D_UP),
          lambda x: x.narrow(-1, 0, 1)),
    table("movedim", lambda x: x.movedim(0, -1), one(SHAPES_1D_UP),
          lambda x: x.movedim(0, -1)),
    table("broadcast_to", lambda x: x.broadcast_to((2,) + x.shape), one(),
          lambda x: x.broadcast_to((2,) + x.shape)),
    table("outer", lambda a, b: tg.outer(a, b), st.tuples(*[hnp.arrays(
        np.float64, st.integers(1, 4), elements=floats())] * 2).map(list),
          lambda a, b: _t().outer(a, b)),
    # ---- einsum ---------------------------------------------------------------------
    table("einsum(attention)", lambda q, k: tg.einsum("bhqd,bhkd->bhqk", q, k),
          st.tuples(*[arrays((2, 1, 3, 2))] * 2).map(list),
          lambda q, k: _t().einsum("bhqd,bhkd->bhqk", q, k)),
    table("einsum(bilinear)", lambda x, w, y: tg.einsum("bi,ij,bj->b", x, w, y),
          st.tuples(arrays((2, 3)), arrays((3, 4)), arrays((2, 4))).map(list),
          lambda x, w, y: _t().einsum("bi,ij,bj->b", x, w, y)),
    table("einsum(batched outer)", lambda a, b: tg.einsum("bi,bj->bij", a, b),
          st.tuples(arrays((2, 3)), arrays((2, 4))).map(list),
          lambda a, b: _t().einsum("bi,bj->bij", a, b)),
    table("einsum(implicit, sum out)", lambda a, b: tg.einsum("ij,jk", a, b),
          st.tuples(arrays((2, 3)), arrays((3, 4))).map(list),
          lambda a, b: _t().einsum("ij,jk", a, b)),
    # an index in three operands, and one shared by all but summed out
    table("einsum(three-way)", lambda a, b, c: tg.einsum("i,i,i->i", a, b, c),
          st.tuples(*[arrays((3,))] * 3).map(list),
          lambda a, b, c: _t().einsum("i,i,i->i", a, b, c)),
    table("einsum(batched bilinear)", lambda x, w: tg.einsum("bij,jk,bk->bi", x, w, x[:, 0]),
          st.tuples(arrays((2, 3, 4)), arrays((4, 4))).map(list),
          lambda x, w: _t().einsum("bij,jk,bk->bi", x, w, x[:, 0])),
    # size-1 axes broadcast against longer ones, in a kept and in a contracted index
    table("einsum(broadcast size 1)", lambda q, k: tg.einsum("bhqd,bhkd->bhqk", q, k),
          st.tuples(arrays((2, 1, 3, 2)), arrays((1, 2, 3, 2))).map(list),
          lambda q, k: _t().einsum("bhqd,bhkd->bhqk", q, k)),
    table("einsum(broadcast contracted)", lambda a, b: tg.einsum("ij,jk->ik", a, b),
          st.tuples(arrays((2, 1)), arrays((3, 4))).map(list),
          lambda a, b: _t().einsum("ij,jk->ik", a, b)),
    table("einsum(broadcast back)", lambda a: tg.einsum("ijk->j", a),
          st.tuples(arrays((2, 3, 2))).map(list),
          lambda a: _t().einsum("ijk->j", a)),
    # repeated indices inside one operand (diagonals, traces) and '...' batch axes
    *[table(f"einsum({eq})", partial(lambda eq, *xs: tg.einsum(eq, *xs), eq),
            st.tuples(*[arrays(s) for s in shapes]).map(list),
            partial(lambda eq, *xs: _t().einsum(eq, *xs), eq)) for eq, shapes in [
        ("ii->i", [(3, 3)]), ("ii->", [(4, 4)]), ("ii", [(3, 3)]),
        ("iij->ji", [(3, 3, 2)]), ("iji->j", [(2, 3, 2)]), ("bii,bi->b", [(2, 3, 3), (2, 3)]),
        ("ij,jj->i", [(2, 3), (3, 3)]), ("i...i", [(3, 2, 3)]), ("...ii->...i", [(2, 3, 3)]),
        ("...ij,...jk->...ik", [(1, 3, 4), (2, 4, 2)]), ("...ij,...jk", [(2, 1, 3, 4), (5, 4, 2)]),
        ("...,...->...", [(3,), (2, 1)]), ("b...,b...->b", [(2, 3), (2, 1)]),
        ("...ij->j", [(2, 3, 4)])]],
]

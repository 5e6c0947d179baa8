"""Pooling and resizing (ops/pooling.py, ops/resize.py) as cases of the one op harness
(tests/harness.py): gradcheck, an independent composition (strided slices of a padded input,
one per window offset; a Python loop over adaptive bins), float32, every device, and PyTorch
(`torch=`; the case's drawn options reach it through `Drawn`). POOL_CASES joins CASES in
tests/op_cases.py.

Max pooling's data are drawn without near-ties (gradcheck's differences would straddle a
switch of the argmax); ties themselves are checked against PyTorch in tests/test_pooling.py.
"""

import itertools
from functools import partial

import numpy as np
from harness import Case
from hypothesis import strategies as st

import tinygen as tg
import tinygen.nn.functional as F


class Drawn:
    """The options the last build drew, for the case's PyTorch twin (check (e) builds the
    case, then calls torch=: both see the same draw)."""

    def __init__(self):
        self.options = {}

    def torch(self, name):
        def call(x):
            import torch.nn.functional as TF
            out = getattr(TF, name)(x, **self.options)
            return out[0] if isinstance(out, tuple) else out
        return call


def distinct_leaf(env, *shape):
    """A leaf whose entries are a shuffled grid 0.1 apart (plus noise < 0.01): no ties, no
    near-ties, in any window."""
    n = int(np.prod(shape))
    rng = env.rng()
    data = (rng.permutation(n) * 0.1 + rng.random(n) * 0.01 - 0.05 * n).reshape(shape)
    return tg.tensor(env.const(data), requires_grad=True)


def pool_geometry(env, spatial, dilated):
    kernel = env.draw(st.tuples(*[st.integers(1, 3 if spatial == 2 else 4)] * spatial),
                      "kernel")
    stride = env.draw(st.tuples(*[st.integers(1, 3)] * spatial), "stride")
    padding = tuple(min(p, k // 2) for p, k in zip(
        env.draw(st.tuples(*[st.integers(0, 1)] * spatial), "padding"), kernel))
    dilation = env.draw(st.tuples(*[st.integers(1, 2)] * spatial), "dilation") if dilated \
        else (1,) * spatial
    ceil_mode = env.draw(st.booleans(), "ceil_mode")
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    # the padded input holds a window; with dilation the input itself does, so that no
    # window lies in the padding alone (max_pool refuses those, see test_pooling.py)
    size = tuple((s if d > 1 else max(1, s - 2 * p)) + env.size(0, 3)
                 for s, p, d in zip(span, padding, dilation))
    return size, kernel, stride, padding, dilation, ceil_mode


def shifted_slices(xp_, kernel, stride, dilation, out):
    """For every kernel offset, the strided slice of the padded input it sees."""
    for offset in np.ndindex(*kernel):
        yield xp_[(Ellipsis, *(slice(a * d, a * d + s * (n - 1) + 1, s) for a, d, s, n in
                               zip(offset, dilation, stride, out)))]


def pad_for(size, kernel, stride, padding, dilation, out):
    """F.pad sizes (last axis first): the padding, plus what a ceil_mode window overhangs."""
    pads = []
    for n, k, s, p, d, o in reversed(list(zip(size, kernel, stride, padding, dilation, out))):
        extra = max(0, (o - 1) * s + d * (k - 1) + 1 - (n + 2 * p))
        pads += [p, p + extra]
    return pads


def out_size(size, kernel, stride, padding, dilation, ceil_mode):
    out = []
    for n, k, s, p, d in zip(size, kernel, stride, padding, dilation):
        o = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
        out.append(o - 1 if ceil_mode and (o - 1) * s >= n + p else o)
    return tuple(out)


def max_pool_case(env, spatial, drawn):
    size, kernel, stride, padding, dilation, ceil_mode = pool_geometry(env, spatial, True)
    x = distinct_leaf(env, env.size(1, 2), env.size(1, 2), *size)
    drawn.options = {"kernel_size": kernel, "stride": stride, "padding": padding,
                         "dilation": dilation, "ceil_mode": ceil_mode}
    fn = partial(F.max_pool2d if spatial == 2 else F.max_pool1d, **drawn.options)
    out = out_size(size, kernel, stride, padding, dilation, ceil_mode)

    def composed(x):  # -inf padding, then the elementwise maximum over the window offsets
        x = F.pad(x, pad_for(size, kernel, stride, padding, dilation, out), value=-np.inf)
        result = None
        for part in shifted_slices(x, kernel, stride, dilation, out):
            result = part if result is None else tg.maximum(result, part)
        return result

    return [x], fn, composed


def avg_pool_case(env, spatial, drawn):
    size, kernel, stride, padding, _, ceil_mode = pool_geometry(env, spatial, False)
    include = env.draw(st.booleans(), "count_include_pad")
    override = env.draw(st.sampled_from([None, 3]), "divisor_override") if spatial == 2 \
        else None
    x = env.leaf(env.size(1, 2), env.size(1, 2), *size)
    drawn.options = {"kernel_size": kernel, "stride": stride, "padding": padding,
                         "ceil_mode": ceil_mode, "count_include_pad": include}
    if override:
        drawn.options["divisor_override"] = override
    fn = partial(F.avg_pool2d if spatial == 2 else F.avg_pool1d, **drawn.options)
    ones = (1,) * spatial
    out = out_size(size, kernel, stride, padding, ones, ceil_mode)

    def composed(x):  # window sums of the zero-padded input over window sums of a mask
        pads = pad_for(size, kernel, stride, padding, ones, out)
        total = sum(shifted_slices(F.pad(x, pads), kernel, stride, ones, out))
        if override:
            return total / override
        mask = tg.ones(*size, dtype=x.dtype, device=x.device)
        if include:  # the padded input counts, what a ceil_mode window overhangs does not
            mask = F.pad(mask, [p for p in padding[::-1] for _ in (0, 1)], value=1.0)
            pads = [e - p for e, p in zip(pads, [p for p in padding[::-1] for _ in (0, 1)])]
        count = sum(shifted_slices(F.pad(mask, pads), kernel, stride, ones, out))
        return total / count

    return [x], fn, composed


def adaptive_case(env, spatial, kind, drawn):
    size = tuple(env.size(1, 6) for _ in range(spatial))
    out = env.draw(st.tuples(*[st.integers(1, 6)] * spatial), "out_size")
    make = distinct_leaf if kind == "max" else (lambda env, *s: env.leaf(*s))
    x = make(env, env.size(1, 2), env.size(1, 2), *size)
    drawn.options = {"output_size": out}
    fn = partial(getattr(F, f"adaptive_{kind}_pool{spatial}d"), output_size=out)

    def composed(x):  # one reduction per bin [floor(i n / m), ceil((i + 1) n / m))
        bins = [[slice(i * n // m, -(-(i + 1) * n // m)) for i in range(m)]
                for n, m in zip(size, out)]
        cells = [x[(Ellipsis, *cell)] for cell in itertools.product(*bins)]   # row-major
        axes = tuple(range(-spatial, 0))
        red = [c.max(axes) if kind == "max" else c.mean(axes) for c in cells]
        return tg.stack(red, -1).reshape(*x.shape[:2], *out)

    return [x], fn, composed


def interpolate_case(env, spatial, mode, drawn):
    size = tuple(env.size(2, 5) for _ in range(spatial))    # 2: a scale 0.5 keeps a pixel
    how = env.draw(st.sampled_from(["size", "scale", "scale-recompute"]), "how")
    if how == "size":
        opts = {"size": env.draw(st.tuples(*[st.integers(1, 7)] * spatial), "size")}
    else:
        scale = env.draw(st.sampled_from([0.5, 1.0, 1.5, 2.0, 2.5, 3.0]), "scale")
        opts = {"scale_factor": scale, "recompute_scale_factor": how == "scale-recompute"}
    if "linear" in mode:
        opts["align_corners"] = env.draw(st.booleans(), "align_corners")
    x = env.leaf(env.size(1, 2), env.size(1, 2), *size)
    drawn.options = dict(mode=mode, **opts)
    return [x], partial(F.interpolate, **drawn.options), None


def case(name, build, examples=(), **options):
    drawn = Drawn()
    return Case(name, partial(build, drawn=drawn), examples=list(examples),
                torch=drawn.torch(name.split("-")[0]), **options)


# hard cases, pinned: a ceil_mode window hanging over the padding, padding on one axis,
# dilation with padding, unequal kernels per axis (a swapped (h, w) fails these)
MAX2D = [{"kernel": (3, 2), "stride": (2, 2), "padding": (1, 0), "dilation": (1, 1),
          "ceil_mode": True},
         {"kernel": (3, 3), "stride": (2, 1), "padding": (1, 1), "dilation": (2, 1),
          "ceil_mode": False},
         {"kernel": (2, 2), "stride": (2, 2), "padding": (0, 0), "dilation": (1, 1),
          "ceil_mode": False}]
AVG2D = [{"kernel": (3, 3), "stride": (2, 2), "padding": (1, 1), "ceil_mode": True,
          "count_include_pad": True, "divisor_override": None},
         {"kernel": (3, 2), "stride": (2, 1), "padding": (1, 1), "ceil_mode": True,
          "count_include_pad": False, "divisor_override": None},
         {"kernel": (2, 3), "stride": (3, 2), "padding": (1, 0), "ceil_mode": True,
          "count_include_pad": True, "divisor_override": 3}]
ADAPTIVE = [{"out_size": (3, 4)}, {"out_size": (5, 2)}]   # bins that overlap, uneven bins

POOL_CASES = [
    case("max_pool2d", partial(max_pool_case, spatial=2), MAX2D),
    case("max_pool1d", partial(max_pool_case, spatial=1),
         [{"kernel": (3,), "stride": (2,), "padding": (1,), "dilation": (2,),
           "ceil_mode": True}]),
    case("avg_pool2d", partial(avg_pool_case, spatial=2), AVG2D),
    case("avg_pool1d", partial(avg_pool_case, spatial=1),
         [{"kernel": (3,), "stride": (2,), "padding": (1,), "ceil_mode": True,
           "count_include_pad": False}]),
    case("adaptive_avg_pool2d", partial(adaptive_case, spatial=2, kind="avg"), ADAPTIVE),
    case("adaptive_avg_pool1d", partial(adaptive_case, spatial=1, kind="avg"),
         [{"out_size": (4,)}]),
    case("adaptive_max_pool2d", partial(adaptive_case, spatial=2, kind="max"), ADAPTIVE),
    case("adaptive_max_pool1d", partial(adaptive_case, spatial=1, kind="max"),
         [{"out_size": (4,)}]),
    *[case(f"interpolate-{mode}-{s}d", partial(interpolate_case, spatial=s, mode=mode),
           [{"how": "scale", "scale": 2.5}, {"how": "size", "size": (7, 3)[:s]}])
      for mode, dims in (("nearest", (1, 2)), ("nearest-exact", (1, 2)), ("linear", (1,)),
                         ("bilinear", (2,))) for s in dims],
]

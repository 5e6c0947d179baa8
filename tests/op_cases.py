"""The table of cases that every Function of tinygen.ops enters (see tests/harness.py for
what each case is and how to add one). Each build(env) returns (leaves, fn, composed)."""

import math
from functools import partial

import numpy as np
from harness import Case
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from op_cases_conv import CONV_CASES
from op_cases_layers import LAYER_CASES
from op_cases_linalg import LINALG_CASES
from op_cases_pool import POOL_CASES
from op_cases_tensor import TENSOR_CASES

import tinygen as tg
import tinygen.nn.functional as F
from tinygen import ops

SLOPE = 0.01  # leaky_relu's default negative slope


def shape_of(env, lo_dims=0, hi_dims=3, name="shape"):
    """A small shape (gradcheck runs two forwards per element), nameable for pins."""
    return env.draw(st.lists(st.integers(1, 4), min_size=lo_dims, max_size=hi_dims)
                    .map(tuple), name)


BROADCAST_PAIRS = hnp.mutually_broadcastable_shapes(
    num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=4).map(
        lambda s: tuple(s.input_shapes))


def broadcast_pair(env):
    """Two shapes that broadcast against each other (size-1 axes, missing leading axes)."""
    return env.draw(BROADCAST_PAIRS, "shapes")

# hard broadcasting cases, pinned: extra leading axes on either side, size-1 axes inside
BROADCAST_EXAMPLES = [{"shapes": ((2, 3, 4), (4,))}, {"shapes": ((3, 1), (2, 1, 4))},
                      {"shapes": ((), (2, 3))}]


# ---- elementwise ------------------------------------------------------------------------
def binary_case(env, op, b_min_abs=0.0):
    sa, sb = broadcast_pair(env)
    return [env.leaf(*sa), env.leaf(*sb, min_abs=b_min_abs)], op, None


def unary_case(env, op, composed=None, **leaf_args):
    return [env.leaf(*shape_of(env), **leaf_args)], op, composed


def pow_case(env):
    p = env.draw(st.sampled_from([2, 3, 0, 1, -1, -2, 0.5, 1.5, -0.5, 2.5]), "p")
    x = env.leaf(*shape_of(env), positive=True, min_abs=0.2)
    return [x], lambda t: t ** p, lambda t: (t.log() * p).exp()


def clip_case(env):
    lo = env.draw(st.sampled_from([None, -0.5]), "lo")
    hi = env.draw(st.sampled_from([None, 0.7]), "hi")
    x = env.leaf(*shape_of(env))
    data = x.numpy()  # keep every value 0.05 from either bound: far beyond gradcheck's eps
    for bound in (lo, hi):
        if bound is not None:
            data = np.where(np.abs(data - bound) < 0.05, bound + 0.1, data)
    x = tg.tensor(env.const(data), requires_grad=True)
    return [x], lambda t: ops.Clip.apply(t, lo=lo, hi=hi), None


def where_case(env):
    sa, sb = broadcast_pair(env)
    shape = np.broadcast_shapes(sa, sb)
    cond = env.rng().random(shape) < 0.5

    def fn(a, b):
        return tg.where(env.const(cond), a, b)

    def composed(a, b):
        c = tg.tensor(env.const(cond.astype(np.float64)))
        return a * c + b * (1 - c)

    return [env.leaf(*sa), env.leaf(*sb)], fn, composed


def cast_case(env):
    # a cast to the leaf's own dtype: any other float type would round away gradcheck's eps
    return ([env.leaf(*shape_of(env))], lambda t: ops.Cast.apply(t, dtype=t.dtype),
            lambda t: t * 1)


# ---- activations ------------------------------------------------------------------------
def gelu_case(env):
    x = env.leaf(*shape_of(env, 1), scale=2.0)

    def composed(x):
        return 0.5 * x * (1 + (math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)).tanh())

    return [x], partial(F.gelu, approximate="tanh"), composed


def swiglu_case(env):
    shape = shape_of(env, 0, 2) + (2 * env.size(1, 3, name="half"),)   # last axis: two halves
    x = env.leaf(*shape, scale=2.0)

    def composed(x):
        a, b = x.split(shape[-1] // 2, -1)
        return F.silu(a) * b

    return [x], F.swiglu, composed


def torch_swiglu(x):
    import torch
    a, b = x.chunk(2, -1)
    return torch.nn.functional.silu(a) * b


def leaky_relu_case(env, slope=SLOPE):
    x = env.leaf(*shape_of(env, 1), min_abs=0.1)
    return ([x], lambda x: F.leaky_relu(x, slope),
            lambda x: tg.where(x.data > 0, x, x * slope))


# ---- matmul, linear ---------------------------------------------------------------------
MATMUL_KINDS = {  # (a shape, b shape) from sizes m, k, n, batch
    "2d": lambda m, k, n, b: ((m, k), (k, n)),
    "vec-mat": lambda m, k, n, b: ((k,), (k, n)),
    "mat-vec": lambda m, k, n, b: ((m, k), (k,)),
    "vec-vec": lambda m, k, n, b: ((k,), (k,)),
    "batched": lambda m, k, n, b: ((b, m, k), (b, k, n)),
    "batch-mat": lambda m, k, n, b: ((b, m, k), (k, n)),
    "mat-batch": lambda m, k, n, b: ((m, k), (b, k, n)),
    "broadcast": lambda m, k, n, b: ((b, 1, m, k), (2, k, n)),
    "vec-batch": lambda m, k, n, b: ((k,), (b, k, n)),
}


def matmul_case(env):
    kind = env.draw(st.sampled_from(sorted(MATMUL_KINDS)), "kind")
    sa, sb = MATMUL_KINDS[kind](*(env.size() for _ in range(4)))
    return [env.leaf(*sa), env.leaf(*sb)], lambda a, b: a @ b, None


def linear_case(env, bias, ndim):
    lead = [env.size() for _ in range(ndim - 1)]
    c_in, c_out = env.size(), env.size()
    leaves = [env.leaf(*lead, c_in), env.leaf(c_out, c_in)]
    if bias:
        leaves.append(env.leaf(c_out))

    def composed(x, w, b=None):
        out = x @ w.transpose(-1, -2)
        return out if b is None else out + b

    return leaves, F.linear, composed


# ---- reductions, softmax ----------------------------------------------------------------
@st.composite
def axis_args(draw, ndim):
    """None, an int or a tuple of ints for a tensor with ndim dims, negatives included."""
    if ndim == 0:
        return None
    return draw(st.none() | st.integers(-ndim, ndim - 1) | st.lists(
        st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple))


def reduce_case(env, method):
    shape = shape_of(env)
    axis = env.draw(axis_args(len(shape)), "axis")
    keepdims = env.draw(st.booleans(), "keepdims")
    x = env.leaf(*shape)

    def fn(t):
        return getattr(t, method)(axis=axis, keepdims=keepdims)

    if method == "mean":
        count = int(np.prod([shape[a] for a in np.atleast_1d(
            range(len(shape)) if axis is None else axis)]))
        return [x], fn, lambda t: t.sum(axis=axis, keepdims=keepdims) * (1.0 / count)
    return [x], fn, None


def softmax_case(env, log):
    shape = shape_of(env, 1)
    axis = env.draw(st.integers(-len(shape), len(shape) - 1), "axis")
    x = env.leaf(*shape, scale=2.0)

    def fn(x):
        return F.log_softmax(x, axis=axis) if log else F.softmax(x, axis=axis)

    def composed(x):
        shifted = x - x.max(axis, keepdims=True).detach()
        if log:
            return shifted - shifted.exp().sum(axis, keepdims=True).log()
        e = shifted.exp()
        return e / e.sum(axis, keepdims=True)

    return [x], fn, composed


# ---- movement ---------------------------------------------------------------------------
def reshape_case(env):
    shape = shape_of(env)
    target = env.draw(st.permutations(list(shape)).map(tuple), "target")
    return [env.leaf(*shape)], lambda t: t.reshape(target + (1,)), None


def permute_case(env):
    shape = shape_of(env)
    axes = env.draw(st.permutations(range(len(shape))).map(tuple), "axes")

    def composed(t):  # the same permutation as a chain of swaps of two axes
        order = list(range(len(axes)))
        for i, a in enumerate(axes):
            j = order.index(a)
            if j != i:
                t, order[i], order[j] = t.transpose(i, j), order[j], order[i]
        return t

    return [env.leaf(*shape)], lambda t: t.permute(*axes), composed


def expand_case(env):
    shape = env.draw(st.lists(st.integers(1, 3), max_size=2).map(tuple), "shape")
    lead = env.draw(st.lists(st.integers(1, 3), max_size=2).map(tuple), "lead")
    big = lead + tuple(env.size(1, 3) if n == 1 else n for n in shape)
    return [env.leaf(*shape)], lambda t: t.expand(*big), lambda t: t + tg.zeros(
        *big, dtype=t.dtype, device=t.device)


def getitem_case(env, kind):
    shape = shape_of(env, 1)
    x = env.leaf(*shape)
    if kind == "basic":
        index = (slice(None, None, env.draw(st.sampled_from([1, 2, -1]), "step")),
                 None, Ellipsis)
        return [x], lambda t: t[index], None
    if kind == "int":  # repeated rows: their gradients add
        idx = env.ints(-shape[0], shape[0], (shape[0] + 2,))
        return [x], lambda t: t[env.const(idx)], None
    mask = env.rng().random(shape) < 0.5  # boolean mask
    return [x], lambda t: t[env.const(mask)], None


def cat_case(env):
    shape = shape_of(env, 1)
    axis = env.draw(st.integers(-len(shape), len(shape) - 1), "axis")
    sizes = [env.size() for _ in range(3)]
    leaves = []
    for n in sizes:
        s = list(shape)
        s[axis] = n
        leaves.append(env.leaf(*s))
    return leaves, lambda *xs: tg.cat(xs, axis), None


def to_device_case(env):
    return ([env.leaf(*shape_of(env))],
            lambda t: ops.ToDevice.apply(t, device=t.device) * 1, lambda t: t * 1)


# ---- convolutions -----------------------------------------------------------------------
def conv_case(env, transposed):
    """conv2d or conv_transpose2d; kernel, stride, padding per direction can be pinned."""
    N, C_in, C_out = env.size(1, 2), env.size(1, 3), env.size(1, 3)
    pair = st.tuples
    kernel = env.draw(pair(st.integers(1, 4), st.integers(1, 4)), "kernel")
    stride = env.draw(pair(st.integers(1, 3), st.integers(1, 3)), "stride")
    padding = env.draw(pair(st.integers(0, 2), st.integers(0, 2)), "padding")
    bias = env.draw(st.booleans(), "bias")
    if transposed:
        size = (env.size(1, 4), env.size(1, 4))
        out_pad = env.draw(pair(st.integers(0, stride[0] - 1), st.integers(0, stride[1] - 1)),
                           "output_padding")
        # padding may not crop away the whole output
        padding = tuple(min(p, ((n - 1) * s + k + o - 1) // 2) for p, n, s, k, o in
                        zip(padding, size, stride, kernel, out_pad))
        w_shape = (C_in, C_out, *kernel)
    else:  # the padded input must hold at least one kernel position
        size = tuple(max(1, k - 2 * p) + env.size(0, 3) for k, p in zip(kernel, padding))
        w_shape = (C_out, C_in, *kernel)
    leaves = [env.leaf(N, C_in, *size), env.leaf(*w_shape)] + (
        [env.leaf(C_out)] if bias else [])

    def fn(x, w, b=None):
        if transposed:
            return F.conv_transpose2d(x, w, b, stride, padding, out_pad)
        return F.conv2d(x, w, b, stride, padding)

    def composed(x, w, b=None):  # conv2d: pad, then one strided slice per kernel offset
        (Kh, Kw), (Sh, Sw), (Ph, Pw) = kernel, stride, padding
        N, C, H, W = x.shape
        zeros = partial(tg.zeros, dtype=x.dtype, device=x.device)
        x = tg.cat([zeros(N, C, Ph, W), x, zeros(N, C, Ph, W)], 2)
        x = tg.cat([zeros(N, C, H + 2 * Ph, Pw), x, zeros(N, C, H + 2 * Ph, Pw)], 3)
        Ho, Wo = (H + 2 * Ph - Kh) // Sh + 1, (W + 2 * Pw - Kw) // Sw + 1
        out = 0
        for a in range(Kh):
            for c in range(Kw):
                patch = x[:, :, a:a + Sh * (Ho - 1) + 1:Sh, c:c + Sw * (Wo - 1) + 1:Sw]
                out = out + patch.permute(0, 2, 3, 1) @ w[:, :, a, c].T   # [N, Ho, Wo, C_out]
        out = out.permute(0, 3, 1, 2)
        return out if b is None else out + b.reshape(1, -1, 1, 1)

    return leaves, fn, None if transposed else composed


# unequal kernel sizes, strides and paddings per direction: a swapped (h, w) fails these
CONV_EXAMPLES = [{"kernel": (2, 3), "stride": (1, 2), "padding": (0, 1), "bias": True},
                 {"kernel": (3, 1), "stride": (2, 1), "padding": (1, 0), "bias": True}]
CONV_T_EXAMPLES = [{**e, "output_padding": (0, 1) if e["stride"][1] > 1 else (1, 0)}
                   for e in CONV_EXAMPLES]


CASES = [
    # elementwise (ops/elementwise.py)
    Case("add", partial(binary_case, op=lambda a, b: a + b), reference=np.add,
         examples=BROADCAST_EXAMPLES),
    Case("sub", partial(binary_case, op=lambda a, b: a - b), reference=np.subtract,
         examples=BROADCAST_EXAMPLES),
    Case("mul", partial(binary_case, op=lambda a, b: a * b), reference=np.multiply,
         examples=BROADCAST_EXAMPLES),
    Case("div", partial(binary_case, op=lambda a, b: a / b, b_min_abs=0.5),
         reference=np.divide, examples=BROADCAST_EXAMPLES),
    Case("neg", partial(unary_case, op=lambda t: -t, composed=lambda t: t * -1),
         reference=np.negative),
    Case("pow", pow_case, examples=[{"p": 0}, {"p": -0.5}]),
    Case("exp", partial(unary_case, op=lambda t: t.exp(), composed=lambda t: math.e ** t),
         reference=np.exp),
    Case("log", partial(unary_case, op=lambda t: t.log(), positive=True, min_abs=0.2),
         reference=np.log),
    Case("sqrt", partial(unary_case, op=lambda t: t.sqrt(), positive=True, min_abs=0.2,
                         composed=lambda t: t ** 0.5), reference=np.sqrt),
    Case("abs", partial(unary_case, op=lambda t: t.abs(), min_abs=0.1), reference=np.abs),
    Case("clip", clip_case, examples=[{"lo": -0.5, "hi": 0.7}, {"lo": None, "hi": 0.7}]),
    Case("cast", cast_case),
    Case("where", where_case, examples=BROADCAST_EXAMPLES),
    # activations (ops/activation.py)
    Case("relu", partial(unary_case, op=lambda t: t.relu(), min_abs=0.1,
                         composed=lambda t: tg.where(t.data > 0, t, t * 0)),
         reference=lambda a: np.maximum(a, 0)),
    Case("tanh", partial(unary_case, op=lambda t: t.tanh(),
                         composed=lambda t: 1 - 2 / ((2 * t).exp() + 1)), reference=np.tanh),
    Case("sigmoid", partial(unary_case, op=lambda t: t.sigmoid(),
                            composed=lambda t: 1 / (1 + (-t).exp())),
         reference=lambda a: 1 / (1 + np.exp(-a))),
    Case("gelu", gelu_case),
    Case("swiglu", swiglu_case, torch=torch_swiglu,
         examples=[{"shape": (), "half": 1}, {"shape": (2, 3), "half": 3}]),
    Case("leaky_relu", leaky_relu_case),
    Case("leaky_relu-0.2", partial(leaky_relu_case, slope=0.2)),  # DCGAN's discriminator
    Case("leaky_relu-0", partial(leaky_relu_case, slope=0.0)),    # plain ReLU
    Case("leaky_relu-1.5", partial(leaky_relu_case, slope=1.5)),  # any slope, not just < 1
    # matmul and linear (ops/matmul.py, ops/linear.py)
    Case("matmul", matmul_case, examples=[{"kind": k} for k in sorted(MATMUL_KINDS)]),
    *[Case(f"linear-{'bias' if b else 'nobias'}-{n}d", partial(linear_case, bias=b, ndim=n))
      for b in (True, False) for n in (2, 3)],
    # reductions and softmax (ops/reduce.py)
    Case("sum", partial(reduce_case, method="sum"),
         examples=[{"shape": (2, 3, 4), "axis": (0, 2), "keepdims": False}]),
    Case("mean", partial(reduce_case, method="mean"),
         examples=[{"shape": (2, 3, 4), "axis": -1, "keepdims": True}]),
    Case("max", partial(reduce_case, method="max"),
         examples=[{"shape": (2, 3, 4), "axis": (2, 0), "keepdims": False}]),
    Case("softmax", partial(softmax_case, log=False)),
    Case("log_softmax", partial(softmax_case, log=True)),
    # movement (ops/movement.py)
    Case("reshape", reshape_case),
    # cyclic permutations are not their own inverse: a backward that applies the forward
    # permutation instead of its inverse fails them (every 2-axis permutation passes)
    Case("permute", permute_case, examples=[{"shape": (2, 3, 4), "axes": (1, 2, 0)},
                                            {"shape": (2, 3, 4), "axes": (2, 0, 1)},
                                            {"shape": (1, 2, 3, 4), "axes": (3, 0, 1, 2)}]),
    Case("expand", expand_case, examples=[{"shape": (3, 1), "lead": (2,)}]),
    Case("getitem-basic", partial(getitem_case, kind="basic")),
    Case("getitem-int", partial(getitem_case, kind="int")),
    Case("getitem-bool", partial(getitem_case, kind="bool")),
    Case("cat", cat_case),
    Case("to_device", to_device_case),
    # normalisation, losses, attention, embedding, dropout (tests/op_cases_layers.py)
    *LAYER_CASES,
    # convolutions (ops/conv.py)
    Case("conv2d", partial(conv_case, transposed=False), rtol=1e-5, examples=CONV_EXAMPLES),
    Case("conv_transpose2d", partial(conv_case, transposed=True), rtol=1e-5,
         examples=CONV_T_EXAMPLES),
    *CONV_CASES,   # groups, dilation, 'same', 1-D, padding modes (tests/op_cases_conv.py)
    # the tensor API of #12 (tests/op_cases_tensor.py: inputs drawn whole, PyTorch twins)
    *TENSOR_CASES,
    *POOL_CASES,  # pooling and resizing (ops/pooling.py, ops/resize.py)
    *LINALG_CASES,  # tg.linalg (tests/op_cases_linalg.py)
]

"""Harness cases (tests/harness.py) for the convolution family of #13: conv1d, conv2d,
conv_transpose1d, conv_transpose2d with groups, dilation, stride, padding per side ('same'
with an odd total), output_padding, and the Conv layers' padding modes.

Each case's `composed` is the plain definition written with other ops, independent of
im2col / col2im: a convolution pads with zeros, then for every kernel offset (a, b) takes
the strided slice of the input that offset sees and multiplies it by the weight column
w[:, :, a, b]; a transposed convolution spreads each input pixel, scaled by that column,
onto the output at S i + d a (zero-inserted input, placed per offset, then cropped).
Groups are done one by one on channel slices. Each case also gives its PyTorch twin.
"""


import warnings

from harness import Case
from hypothesis import strategies as st

import tinygen as tg
import tinygen.nn.functional as F
from tinygen import nn

try:
    import torch
except ImportError:   # check (e) is skipped without torch; the twins are never called
    torch = None


# ---- the definition, from slices, cat and matmul ----------------------------------------
def zeros(t, shape):
    return tg.zeros(*shape, dtype=t.dtype, device=t.device)


def pad_axis(x, axis, lo, hi):
    """Zeros before and after x along `axis`."""
    parts = [zeros(x, x.shape[:axis] + (m,) + x.shape[axis + 1:]) for m in (lo, hi)]
    return tg.cat([p for p in (parts[0], x, parts[1]) if p.shape[axis]], axis)


def take_axis(x, axis, index):
    return x[(slice(None),) * axis + (index,)]


def spread(x, axis, s):
    """s - 1 zeros between neighbours along `axis`: [.., n, ..] -> [.., (n - 1) s + 1, ..]."""
    if s == 1:
        return x
    n = x.shape[axis]
    x = x.reshape(*x.shape[:axis + 1], 1, *x.shape[axis + 1:])
    x = tg.cat([x, zeros(x, x.shape[:axis + 1] + (s - 1,) + x.shape[axis + 2:])], axis + 1)
    x = x.reshape(*x.shape[:axis], n * s, *x.shape[axis + 2:])
    return take_axis(x, axis, slice(0, (n - 1) * s + 1))


def conv_composed(x, w, b, stride, sides, dilation, groups):
    """conv2d of x [N, C_in, H, W] by w [C_out, C_in/G, K_h, K_w], by its definition."""
    (Sh, Sw), (dh, dw) = stride, dilation
    x = pad_axis(pad_axis(x, 2, *sides[0]), 3, *sides[1])
    Kh, Kw = w.shape[2:]
    Ho, Wo = ((m - d * (k - 1) - 1) // s + 1 for m, k, s, d in
              zip(x.shape[2:], (Kh, Kw), stride, dilation))
    cig, cog, outs = w.shape[1], w.shape[0] // groups, []
    for g in range(groups):
        xg, wg, out = x[:, g * cig:(g + 1) * cig], w[g * cog:(g + 1) * cog], 0
        for a in range(Kh):
            for c in range(Kw):
                patch = xg[:, :, a * dh:a * dh + Sh * (Ho - 1) + 1:Sh,
                           c * dw:c * dw + Sw * (Wo - 1) + 1:Sw]     # [N, C_in/G, Ho, Wo]
                out = out + patch.permute(0, 2, 3, 1) @ wg[:, :, a, c].T
        outs.append(out.permute(0, 3, 1, 2))                          # [N, C_out/G, Ho, Wo]
    out = tg.cat(outs, 1) if groups > 1 else outs[0]
    return out if b is None else out + b.reshape(1, -1, 1, 1)


def conv_transpose_composed(x, w, b, stride, sides, output_padding, dilation, groups):
    """conv_transpose2d of x [N, C_in, H, W] by w [C_in, C_out/G, K_h, K_w]: x[n, c, i, j]
    w[c, o, a, b] lands on output pixel (S_h i + d_h a - P_top, S_w j + d_w b - P_left)."""
    (Sh, Sw), (dh, dw) = stride, dilation
    H, W = x.shape[2:]
    Kh, Kw = w.shape[2:]
    Hf = (H - 1) * Sh + dh * (Kh - 1) + 1 + output_padding[0]     # before cropping
    Wf = (W - 1) * Sw + dw * (Kw - 1) + 1 + output_padding[1]
    cig, outs = w.shape[0] // groups, []
    for g in range(groups):
        up = spread(spread(x[:, g * cig:(g + 1) * cig], 2, Sh), 3, Sw)   # zero-inserted
        wg, full = w[g * cig:(g + 1) * cig], 0
        for a in range(Kh):
            for c in range(Kw):
                part = (up.permute(0, 2, 3, 1) @ wg[:, :, a, c]).permute(0, 3, 1, 2)
                part = pad_axis(part, 2, a * dh, Hf - a * dh - part.shape[2])
                full = full + pad_axis(part, 3, c * dw, Wf - c * dw - part.shape[3])
        outs.append(full)
    full = tg.cat(outs, 1) if groups > 1 else outs[0]
    (pt, pb), (pl, pr) = sides
    out = full[:, :, pt:Hf - pb, pl:Wf - pr]
    return out if b is None else out + b.reshape(1, -1, 1, 1)


# ---- the cases --------------------------------------------------------------------------
MODES = ("reflect", "replicate", "circular")   # the layers' padding modes besides 'zeros'


def sides_of(padding, kernel, dilation, n):
    """PyTorch's padding argument -> ((lo, hi), ...) ('same': the extra one at the end)."""
    if padding == "valid":
        return ((0, 0),) * n
    if padding == "same":
        return tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2)
                     for k, d in zip(kernel, dilation))
    return tuple((p, p) for p in padding)


def lift(t, n):
    """A 1-D tensor [N, C, L] as the 2-D [N, C, 1, L] the compositions are written for."""
    return t if n == 2 else t.reshape(*t.shape[:2], 1, t.shape[2])


def conv_case(env, transposed, padding_mode=False):
    n = env.draw(st.sampled_from([1, 2]), "ndim")
    mode = env.draw(st.sampled_from(MODES), "mode") if padding_mode else None
    G = env.draw(st.integers(1, 2), "groups")
    cig, cog = env.size(1, 2, name="cig"), env.size(1, 2, name="cog")   # channels per group
    N, C_in, C_out = env.size(1, 2), G * cig, G * cog

    def axes(h, w):   # one strategy per spatial axis: (h, w), or (w,) for 1-D
        return st.tuples(h, w) if n == 2 else st.tuples(w)

    kernel = env.draw(axes(st.integers(1, 3), st.integers(1, 3)), "kernel")
    dilation = env.draw(axes(st.integers(1, 2), st.integers(1, 2)), "dilation")
    kinds = ["int"] if transposed else ["int", "int", "same", "valid"]
    kind = env.draw(st.sampled_from(kinds), "padding_kind")
    stride = (1,) * n if kind == "same" else env.draw(
        axes(st.integers(1, 3), st.integers(1, 3)), "stride")
    padding = kind if kind != "int" else env.draw(
        axes(st.integers(0, 2), st.integers(0, 2)), "padding")
    sides = sides_of(padding, kernel, dilation, n)
    bias = env.draw(st.booleans(), "bias")
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    if transposed:
        size = tuple(env.size(1, 3) for _ in range(n))
        output_padding = env.draw(st.tuples(*(st.integers(0, max(s, d) - 1) for s, d in
                                              zip(stride, dilation))), "output_padding")
        # padding may not crop away the whole output
        sides = tuple((min(lo, (full - 1) // 2),) * 2 for (lo, _), full in zip(sides, (
            (m - 1) * s + sp + o for m, s, sp, o in zip(size, stride, span, output_padding))))
        padding = tuple(lo for lo, _ in sides)
        w_shape = (C_in, cog, *kernel)
    else:   # the padded input must hold at least one (dilated) kernel position
        size = tuple(max(1, sp - lo - hi) + env.size(0, 2) for sp, (lo, hi) in zip(span, sides))
        w_shape = (C_out, cig, *kernel)
    if mode is not None:   # the layer's padding modes need a pad smaller than the input
        size = tuple(max(m, hi + 1) for m, (_, hi) in zip(size, sides))
    leaves = [env.leaf(N, C_in, *size), env.leaf(*w_shape)] + ([env.leaf(C_out)] if bias else [])
    lib = {True: {1: "conv_transpose1d", 2: "conv_transpose2d"},
           False: {1: "conv1d", 2: "conv2d"}}[transposed][n]
    if transposed:
        options = {"stride": stride, "padding": padding, "output_padding": output_padding,
                   "groups": G, "dilation": dilation}
    else:
        options = {"stride": stride, "padding": padding, "dilation": dilation, "groups": G}

    def fn(x, w, b=None):
        return getattr(F, lib)(x, w, b, **options)

    def twin(x, w, b=None):
        with warnings.catch_warnings():   # 'same' with an even kernel: a padded copy, fine
            warnings.simplefilter("ignore", UserWarning)
            return getattr(torch.nn.functional, lib)(x, w, b, **options)

    if mode is not None:   # through the layer: nn.Conv{n}d(..., padding_mode=mode)
        layer = (nn.Conv1d if n == 1 else nn.Conv2d)(
            C_in, C_out, kernel, stride, padding, dilation, G, bias, padding_mode=mode)

        def fn(x, w, b=None):
            layer.weight, layer.bias = w, b
            return layer(x)

        def twin(x, w, b=None):   # PyTorch's layer forward with these weights
            ours = (torch.nn.Conv1d if n == 1 else torch.nn.Conv2d)(
                C_in, C_out, kernel, stride, padding, dilation, G, bias, padding_mode=mode)
            return ours._conv_forward(x, w, b)

    def composed(x, w, b=None):
        full_s, full_d = (1,) * (2 - n) + stride, (1,) * (2 - n) + dilation
        full_sides = ((0, 0),) * (2 - n) + sides
        if transposed:
            out = conv_transpose_composed(lift(x, n), lift(w, n), b, full_s, full_sides,
                                          (0,) * (2 - n) + output_padding, full_d, G)
        else:
            x2 = lift(x, n)
            if mode is not None:   # the layer pads with F.pad first, then convolves
                x2 = F.pad(x2, tuple(p for side in reversed(full_sides) for p in side), mode)
                full_sides = ((0, 0), (0, 0))
            out = conv_composed(x2, lift(w, n), b, full_s, full_sides, full_d, G)
        return out if n == 2 else out.reshape(*out.shape[:2], out.shape[3])

    return leaves, fn, composed, twin


class Twinned:
    """A case whose PyTorch twin depends on its draws: check (e) (tests/harness.py,
    check_torch) builds the case and then calls `torch`, so the twin kept by the last
    build is the one for the leaves it is given."""

    def __init__(self, transposed, padding_mode=False):
        self.transposed, self.padding_mode, self.twin = transposed, padding_mode, None

    def build(self, env):
        leaves, fn, composed, self.twin = conv_case(env, self.transposed, self.padding_mode)
        return leaves, fn, composed

    def torch(self, *theirs):
        return self.twin(*theirs)


def case(name, transposed, examples=(), padding_mode=False):
    t = Twinned(transposed, padding_mode)
    return Case(name, t.build, rtol=1e-5, examples=list(examples), torch=t.torch)


# pinned hard cases: unequal stride / dilation / kernel per direction (a swapped (h, w)
# fails them), depthwise (groups = channels, one channel per group), an odd 'same' total
# (split 0 before, 1 after), output_padding below a dilation larger than the stride
HARD_2D = [
    {"ndim": 2, "groups": 1, "kernel": (2, 3), "stride": (1, 2), "dilation": (2, 1),
     "padding_kind": "int", "padding": (0, 1), "bias": True},
    {"ndim": 2, "groups": 3, "cig": 1, "kernel": (3, 1), "stride": (2, 1),
     "dilation": (1, 2), "padding_kind": "int", "padding": (1, 0), "bias": True},
]
SAME = [{"ndim": 2, "groups": 2, "kernel": (2, 3), "dilation": (1, 2), "padding_kind": "same",
         "bias": True},
        {"ndim": 1, "groups": 1, "kernel": (4,), "dilation": (1,), "padding_kind": "same",
         "bias": False}]
HARD_T = [{**e, "output_padding": (1, 0)} for e in HARD_2D] + [
    {"ndim": 2, "groups": 2, "kernel": (2, 2), "stride": (1, 1), "dilation": (3, 1),
     "padding_kind": "int", "padding": (0, 0), "output_padding": (2, 0), "bias": False},
    {"ndim": 1, "groups": 2, "cig": 1, "cog": 1, "kernel": (3,), "stride": (3,),
     "dilation": (2,), "padding_kind": "int", "padding": (1,), "output_padding": (2,),
     "bias": True}]

CONV_CASES = [
    case("conv-groups-dilation", False, HARD_2D + SAME),
    case("conv_transpose-groups-dilation", True, HARD_T),
    case("conv-padding_mode", False, [
        {"ndim": 2, "mode": "reflect", "kernel": (3, 2), "padding_kind": "same",
         "dilation": (1, 1)},
        {"ndim": 2, "mode": "replicate", "kernel": (2, 3), "padding_kind": "int",
         "padding": (1, 2), "stride": (2, 1), "dilation": (1, 2)},
        {"ndim": 1, "mode": "circular", "kernel": (3,), "padding_kind": "int",
         "padding": (2,), "stride": (2,), "dilation": (1,)}], padding_mode=True),
]

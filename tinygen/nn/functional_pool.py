"""Pooling, resizing and pixel shuffle of tinygen.nn.functional (PyTorch's names, arguments
and defaults). Each wrapper checks its arguments as PyTorch does (errors name the function),
builds the op's window plan once per geometry (tinygen/ops/pooling.py, ops/resize.py) and
runs one Function; pixel_shuffle is a reshape/permute composition.

Inputs are [N, C, *spatial] or unbatched [C, *spatial]; 1-D ops take [N, C, L].
"""

import math
import numbers

from tinygen import ops
from tinygen.ops import pooling, resize


# ---- arguments --------------------------------------------------------------------------
def _tuple(value, n, name, op):
    """An int (or a tuple of n ints) as a tuple of n ints; a clear error otherwise."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (int(value),) * n
    if isinstance(value, (tuple, list)) and len(value) == 1 and n == 1:
        value = tuple(value)
    if not (isinstance(value, (tuple, list)) and len(value) == n and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)):
        raise ValueError(f"{op}: {name} must be an int or a tuple of {n} ints, got {value!r}")
    return tuple(int(v) for v in value)


def _check_input(x, spatial, op):
    if x.ndim not in (spatial + 1, spatial + 2) or 0 in x.shape:
        want = "[N, C, L] or [C, L]" if spatial == 1 else "[N, C, H, W] or [C, H, W]"
        raise ValueError(f"{op}: expected a non-empty {spatial + 1}-D or {spatial + 2}-D "
                         f"input {want}, got shape {tuple(x.shape)}")
    return tuple(x.shape[-spatial:])


def _pool_args(op, x, spatial, kernel_size, stride, padding, dilation, ceil_mode):
    """PyTorch's pool2d_shape_check: kernel, stride and dilation positive, padding at most
    half the kernel, an output of at least one window."""
    size = _check_input(x, spatial, op)
    k = _tuple(kernel_size, spatial, "kernel_size", op)
    s = k if stride is None or stride == [] or stride == () else _tuple(
        stride, spatial, "stride", op)
    p = _tuple(padding, spatial, "padding", op)
    d = _tuple(dilation, spatial, "dilation", op)
    for name, v in (("kernel_size", k), ("stride", s), ("dilation", d)):
        if min(v) < 1:
            raise ValueError(f"{op}: {name} must be positive, got {v}")
    if min(p) < 0 or any(pi > ki // 2 for pi, ki in zip(p, k)):
        raise ValueError(f"{op}: padding must be non-negative and at most half the kernel "
                         f"size, got padding {p} for kernel_size {k}")
    out = tuple(pooling.pool_output_size(*a, bool(ceil_mode)) for a in zip(size, k, s, p, d))
    if min(out) < 1:
        raise ValueError(f"{op}: input of size {size} gives an output of size {out} with "
                         f"kernel_size {k}, stride {s}, padding {p}, dilation {d}: "
                         f"the output is too small")
    return size, k, s, p, d


# ---- max and average pooling ------------------------------------------------------------
def _max_pool(op, spatial, x, kernel_size, stride, padding, dilation, ceil_mode,
              return_indices):
    size, k, s, p, d = _pool_args(op, x, spatial, kernel_size, stride, padding, dilation,
                                  ceil_mode)
    plan = pooling.max_pool_plan(size, k, s, p, d, bool(ceil_mode), op)
    indices = pooling.window_argmax(x.data, plan)
    out = ops.MaxPoolFunction.apply(x, indices=indices, plan=plan)
    return (out, type(x)(indices)) if return_indices else out


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """The maximum of each window of [N, C, L]; indices are positions along L."""
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation,
                     ceil_mode, return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """The maximum of each window of [N, C, H, W] (padding counts as -inf); indices are
    flat positions y * W + x in each plane, as PyTorch's (for its MaxUnpool)."""
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation,
                     ceil_mode, return_indices)


def _avg_pool(op, spatial, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override):
    size, k, s, p, _ = _pool_args(op, x, spatial, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and (not isinstance(divisor_override, numbers.Integral)
                                         or divisor_override == 0):
        raise ValueError(f"{op}: divisor_override must be a non-zero int, got "
                         f"{divisor_override!r}")
    plan = pooling.avg_pool_plan(size, k, s, p, bool(ceil_mode), bool(count_include_pad),
                                 divisor_override)
    return ops.WindowSumFunction.apply(x, plan=plan)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    """The mean of each window of [N, C, L] (zero padding counted unless
    count_include_pad=False)."""
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, None)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """The mean of each window of [N, C, H, W]: the sum over the window's pixels divided by
    its size clipped to the padded input (count_include_pad), to the input, or by
    divisor_override."""
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override)


# ---- adaptive pooling -------------------------------------------------------------------
def _adaptive(op, spatial, x, output_size, kind, return_indices=False):
    size = _check_input(x, spatial, op)
    if output_size is None or isinstance(output_size, numbers.Integral):
        output_size = (output_size,) * spatial
    if not isinstance(output_size, (tuple, list)) or len(output_size) != spatial:
        raise ValueError(f"{op}: output_size must be an int or a tuple of {spatial}, got "
                         f"{output_size!r}")
    out = tuple(n if m is None else m for n, m in zip(size, output_size))  # None: keep
    if not all(isinstance(m, numbers.Integral) and m >= 1 for m in out):
        raise ValueError(f"{op}: output_size must be positive ints, got {output_size!r}")
    plan = pooling.adaptive_plan(size, tuple(int(m) for m in out), kind)
    if kind == "avg":
        return ops.WindowSumFunction.apply(x, plan=plan)
    indices = pooling.window_argmax(x.data, plan)
    values = ops.MaxPoolFunction.apply(x, indices=indices, plan=plan)
    return (values, type(x)(indices)) if return_indices else values


def adaptive_avg_pool1d(input, output_size):
    return _adaptive("adaptive_avg_pool1d", 1, input, output_size, "avg")


def adaptive_avg_pool2d(input, output_size):
    """Means over PyTorch's bins: output i covers [floor(i H/H_out), ceil((i+1) H/H_out))."""
    return _adaptive("adaptive_avg_pool2d", 2, input, output_size, "avg")


def adaptive_max_pool1d(input, output_size, return_indices=False):
    return _adaptive("adaptive_max_pool1d", 1, input, output_size, "max", return_indices)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    return _adaptive("adaptive_max_pool2d", 2, input, output_size, "max", return_indices)


# ---- interpolation ----------------------------------------------------------------------
MODES = {"nearest": (1, 2), "nearest-exact": (1, 2), "linear": (1,), "bilinear": (2,),
         "area": (1, 2)}


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize [N, C, L] or [N, C, H, W] to `size`, or by `scale_factor` (the output is
    floor(n * scale_factor); the coordinates use scale_factor itself unless
    recompute_scale_factor=True, as PyTorch). Modes nearest, nearest-exact, linear (3-D),
    bilinear (4-D), area (adaptive average pooling); align_corners for the linear ones."""
    op = "interpolate"
    if mode not in MODES:
        raise ValueError(f"{op}: mode must be one of {sorted(MODES)}, got {mode!r}")
    if antialias:
        raise ValueError(f"{op}: antialias=True is not supported")
    if input.ndim not in (3, 4) or 0 in input.shape:
        raise ValueError(f"{op}: expected a non-empty 3-D [N, C, L] or 4-D [N, C, H, W] "
                         f"input, got shape {tuple(input.shape)}")
    spatial = input.ndim - 2
    if spatial not in MODES[mode]:
        raise ValueError(f"{op}: mode {mode!r} needs a {MODES[mode][0] + 2}-D input, got "
                         f"shape {tuple(input.shape)}")
    if align_corners is not None and mode not in ("linear", "bilinear"):
        raise ValueError(f"{op}: align_corners can only be set with the interpolating modes "
                         f"linear and bilinear, not {mode!r}")
    in_size = tuple(input.shape[2:])
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: give exactly one of size and scale_factor, got size={size!r} "
                         f"and scale_factor={scale_factor!r}")
    if size is not None:
        if recompute_scale_factor:
            raise ValueError(f"{op}: recompute_scale_factor is not meaningful with an "
                             f"explicit size")
        out = _sizes(size, spatial, "size", op)
        scales = (None,) * spatial
    else:
        scales = _sizes(scale_factor, spatial, "scale_factor", op)
        if min(scales) <= 0:
            raise ValueError(f"{op}: scale_factor must be positive, got {scale_factor!r}")
        out = tuple(math.floor(float(n) * s) for n, s in zip(in_size, scales))
        if recompute_scale_factor:
            scales = (None,) * spatial
    if min(out) < 1:
        raise ValueError(f"{op}: input of size {in_size} gives an output of size {out}: "
                         f"output sizes must be positive")
    if mode == "area":
        return _adaptive(op, spatial, input, out, "avg")
    plan = resize.resize_plan(in_size, out, mode, align_corners, scales, input.dtype)
    return ops.WindowSumFunction.apply(input, plan=plan)


def _sizes(value, spatial, name, op):
    """size or scale_factor: one number for every spatial axis, or a tuple of `spatial`."""
    kind = numbers.Integral if name == "size" else numbers.Real
    values = (value,) * spatial if isinstance(value, numbers.Number) else value
    if not (isinstance(values, (tuple, list)) and len(values) == spatial and all(
            isinstance(v, kind) and not isinstance(v, bool) for v in values)):
        raise ValueError(f"{op}: {name} must be a number or a tuple of {spatial} for an input "
                         f"with {spatial} spatial axes, got {value!r}")
    return tuple(int(v) if name == "size" else float(v) for v in values)


# ---- pixel shuffle (Shi et al. 2016, "Real-Time Single Image and Video Super-Resolution")
def pixel_shuffle(input, upscale_factor):
    """[*, C r², H, W] -> [*, C, H r, W r]: each group of r² channels becomes an r x r block."""
    r = _factor(upscale_factor, "pixel_shuffle")
    if input.ndim < 3 or input.shape[-3] % (r * r):
        raise ValueError(f"pixel_shuffle: expected an input [*, C*{r * r}, H, W] whose "
                         f"channels divide by upscale_factor² = {r * r}, got {input.shape}")
    *lead, C, H, W = input.shape
    n = len(lead)
    x = input.reshape(*lead, C // (r * r), r, r, H, W)            # [*, C, r, r, H, W]
    x = x.permute(*range(n), n, n + 3, n + 1, n + 4, n + 2)        # [*, C, H, r, W, r]
    return x.reshape(*lead, C // (r * r), H * r, W * r)


def pixel_unshuffle(input, downscale_factor):
    """[*, C, H r, W r] -> [*, C r², H, W]: the inverse of pixel_shuffle."""
    r = _factor(downscale_factor, "pixel_unshuffle")
    if input.ndim < 3 or input.shape[-1] % r or input.shape[-2] % r:
        raise ValueError(f"pixel_unshuffle: expected an input [*, C, H, W] with H and W "
                         f"divisible by downscale_factor {r}, got {input.shape}")
    *lead, C, H, W = input.shape
    n = len(lead)
    x = input.reshape(*lead, C, H // r, r, W // r, r)             # [*, C, H, r, W, r]
    x = x.permute(*range(n), n, n + 2, n + 4, n + 1, n + 3)        # [*, C, r, r, H, W]
    return x.reshape(*lead, C * r * r, H // r, W // r)


def _factor(r, op):
    if not isinstance(r, numbers.Integral) or isinstance(r, bool) or r < 1:
        raise ValueError(f"{op}: the factor must be a positive int, got {r!r}")
    return int(r)

"""Interpolation (F.interpolate, nn.Upsample) as windows of ops/pooling.py.

Every output pixel of a nearest or (bi)linear resize is a fixed weighted sum of one or two
input pixels per axis, so a resize is a `SeparableWindows` plan (taps, weights per axis) run by
WindowSumFunction: forward a gather-sum, backward the transposed gather-sum. This file only
works out the taps, with PyTorch's source-coordinate rules (aten/src/ATen/native/
UpSample.h), in PyTorch's arithmetic (float32 for nearest, the input's dtype for linear) so
that even a source index on a rounding boundary matches:

    nearest        src = min(floor(dst * scale), n_in - 1)               (PyTorch's legacy)
    nearest-exact  src = min(floor((dst + 0.5) * scale), n_in - 1)
    linear         src = scale * dst                       (align_corners=True)
                   src = max(scale * (dst + 0.5) - 0.5, 0)  (align_corners=False)
                   weights 1 - λ, λ on floor(src) and the next pixel (clamped at the edge)

where scale = n_in / n_out, or 1 / scale_factor when the caller passed a scale factor (and
did not ask to recompute it), or (n_in - 1) / (n_out - 1) with align_corners.
"""

import functools

import numpy as np

from tinygen.ops.pooling import AxisWindows, SeparableWindows, as_plane


def source_scale(n_in, n_out, align_corners, scale_factor, dtype):
    """PyTorch's area_pixel_compute_scale, in `dtype` arithmetic."""
    dtype = np.dtype(dtype).type
    if align_corners:
        return dtype(n_in - 1) / dtype(n_out - 1) if n_out > 1 else dtype(0)
    if scale_factor is not None and scale_factor > 0:
        return dtype(1.0 / scale_factor)
    return dtype(n_in) / dtype(n_out)


def nearest_taps(n_in, n_out, scale_factor, exact):
    """[n_out, 1] source pixels and weights 1 (float32 arithmetic, as PyTorch's CPU kernel)."""
    scale = source_scale(n_in, n_out, False, scale_factor, np.float32)
    dst = np.arange(n_out)
    if exact:
        src = np.floor(((dst + 0.5) * np.float64(scale)).astype(np.float32))
    elif n_out == n_in:
        src = dst
    elif n_out == 2 * n_in:
        src = dst >> 1
    else:
        src = np.floor(dst.astype(np.float32) * scale)
    src = np.minimum(src.astype(np.int64), n_in - 1)
    return src[:, None], np.ones((n_out, 1))


def linear_taps(n_in, n_out, align_corners, scale_factor, dtype):
    """[n_out, 2] source pixels (floor(src) and the next, clamped) and weights 1 - λ, λ."""
    if n_out == n_in:                       # PyTorch copies: no resampling at all
        return np.arange(n_out)[:, None], np.ones((n_out, 1))
    t = np.dtype(dtype).type
    scale = source_scale(n_in, n_out, align_corners, scale_factor, dtype)
    dst = np.arange(n_out).astype(dtype)
    src = scale * dst if align_corners else np.maximum(scale * (dst + t(0.5)) - t(0.5), t(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    lam = np.clip(src - i0.astype(dtype), 0, 1)
    i1 = i0 + (i0 < n_in - 1)
    return np.stack([i0, i1], 1), np.stack([1 - lam, lam], 1).astype(np.float64)


@functools.lru_cache(maxsize=256)
def resize_plan(in_size, out_size, mode, align_corners, scales, dtype):
    """The Windows of a resize of planes in_size -> out_size (1-D resizes are H = 1);
    scales: the scale factor per axis that PyTorch uses for coordinates, or Nones."""
    spatial = len(in_size)
    in_size, out_size, scales = as_plane(in_size, (out_size, 1), (scales, None))
    taps, weights = [], []
    for n_in, n_out, s in zip(in_size, out_size, scales):
        if mode in ("nearest", "nearest-exact"):
            t, w = nearest_taps(n_in, n_out, s, mode == "nearest-exact")
        else:
            t, w = linear_taps(n_in, n_out, bool(align_corners), s, np.dtype(dtype))
        taps.append(t)
        weights.append(w)
    return SeparableWindows(*(AxisWindows(n, t, w) for n, t, w in zip(in_size, taps, weights)),
                            spatial)

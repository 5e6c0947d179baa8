"""Pooling (max, average, adaptive) and resampling as windows gathered from each image plane.

Every op here reads, for each output pixel l, a few input pixels of the same plane, its
"window": `table[l, t]` is the flat position (y * W + x) of tap t of that window. One gather
`xp.take(planes, table, axis=1)` lifts all windows of every plane at once into an array
[B, L, T] (B = N*C planes, L = H_out*W_out outputs, T taps), the gather form of conv's
im2col; each op is then one reduction over the last axis:

    max pooling       the largest tap (MaxPoolFunction gathers it at its argmax)
    average pooling   Σ_t weight[l, t] · tap, weight = 1/divisor, 0 on padding taps
    adaptive pooling  the same, with PyTorch's bins [floor(i n/m), ceil((i+1) n/m))
    interpolation     Σ_t weight[l, t] · tap with linear / nearest weights (ops/resize.py)

So the whole family is two Functions. WindowSumFunction's backward is the same gather-sum
with the transposed table (for every input pixel, the outputs that read it), built once
per geometry on the host: a gather instead of a scatter-add, so no atomics and no sort.
Python never loops over pixels, channels or the batch; each plan (table, weights) is built
once per geometry with NumPy and copied to a device once (`Windows.on`).

Shapes: N batch, C channels, H, W input size (1-D pooling is H = 1), K kernel, S stride,
P padding, D dilation; per axis, `taps` arrays are [n_out, k] positions along that axis.
"""

import functools
import math

import numpy as np

from tinygen.autograd import Function
from tinygen.backend import get_array_module


# ---- the windows of one axis -------------------------------------------------------------
def pool_output_size(n, k, s, p, d, ceil_mode):
    """PyTorch's pooling_output_shape: kernel positions that fit along an axis of size n;
    with ceil_mode a last, partial window is kept if it starts inside the input or the
    left padding."""
    span = d * (k - 1) + 1
    out = (n + 2 * p - span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def pool_taps(n, n_out, k, s, p, d):
    """[n_out, k] positions o*S - P + j*D along one axis (some fall in the padding)."""
    return (np.arange(n_out) * s - p)[:, None] + (np.arange(k) * d)[None, :]


def avg_divisors(n, n_out, k, s, p, count_include_pad):
    """PyTorch's avg_pool divisor along one axis: the window clipped to the padded input
    (count_include_pad) or to the input itself; a 2-D divisor is the product of two."""
    start = np.arange(n_out) * s - p
    end = np.minimum(start + k, n + p)
    if count_include_pad:
        return end - start
    return np.minimum(end, n) - np.maximum(start, 0)


def adaptive_taps(n, n_out):
    """PyTorch's adaptive bins: output i pools [floor(i n / m), ceil((i+1) n / m)). Returns
    [n_out, T] positions (T the widest bin) and which of them are inside their bin."""
    i = np.arange(n_out)
    start, end = (i * n) // n_out, -((-(i + 1) * n) // n_out)
    width = end - start
    taps = start[:, None] + np.arange(width.max())[None, :]
    return taps, taps < end[:, None]


# ---- a plan: the windows of a whole plane ------------------------------------------------
class Windows:
    """table [L, T] (flat input positions), weight [L, T] or None, and the transposed
    table for WindowSumFunction's backward; in_size, out_size the plane sizes (H, W).
    A 1-D op (spatial=1) is a plane with H = 1 whose H axis the tensors do not have."""

    def __init__(self, in_size, out_size, table, weight=None, spatial=2):
        self.in_size, self.out_size = tuple(in_size), tuple(out_size)
        self.in_shape, self.out_shape = self.in_size[2 - spatial:], self.out_size[2 - spatial:]
        self.table, self.weight = table.astype(np.int64), weight
        L, T = table.shape
        # windows that share no pixel: max pooling's gradient is a plain assignment
        self.disjoint = len(np.unique(table)) == table.size
        self.rows = np.arange(L) * T                   # table.ravel()[rows + t] is tap t
        self.inverse = None if weight is None else transpose_windows(
            table, weight, math.prod(self.in_size))
        self._device = {}

    def on(self, xp, dtype=np.float32):
        """(table, weight, rows, inverse table, inverse weight) as arrays of module xp
        (NumPy or CuPy), weights in `dtype`: copied to a device once, not every step."""
        key = (xp.__name__, np.dtype(dtype).str)
        if key not in self._device:
            inv_table, inv_weight = self.inverse or (None, None)
            weight = None if self.weight is None else self.weight.astype(dtype)
            inv_weight = None if inv_weight is None else inv_weight.astype(dtype)
            self._device[key] = tuple(None if a is None else xp.asarray(a) for a in (
                self.table, weight, self.rows, inv_table, inv_weight))
        return self._device[key]


def transpose_windows(table, weight, n_in):
    """The adjoint plan: for every input pixel p, the outputs l that read it and with what
    weight, as [n_in, R] arrays (R the most outputs any pixel feeds; unused slots read
    output 0 with weight 0)."""
    L, T = table.shape
    p, w = table.ravel(), weight.ravel()
    l = np.repeat(np.arange(L), T)
    keep = w != 0
    p, l, w = p[keep], l[keep], w[keep]
    order = np.argsort(p, kind="stable")
    p, l, w = p[order], l[order], w[order]
    counts = np.bincount(p, minlength=n_in)
    rank = np.arange(len(p)) - (np.cumsum(counts) - counts)[p]   # slot of each entry
    R = max(int(counts.max(initial=0)), 1)
    inv_table = np.zeros((n_in, R), np.int64)
    inv_weight = np.zeros((n_in, R), weight.dtype)
    inv_table[p, rank], inv_weight[p, rank] = l, w
    return inv_table, inv_weight


def plane_windows(taps_h, taps_w, in_size, valid_h, valid_w):
    """Per-axis taps [H_out, k_h], [W_out, k_w] -> the 2-D table [H_out*W_out, k_h*k_w]
    (window order row-major, as PyTorch scans a window) and its validity mask."""
    W = in_size[1]
    table = (taps_h[:, None, :, None] * W + taps_w[None, :, None, :])
    valid = valid_h[:, None, :, None] & valid_w[None, :, None, :]
    L = taps_h.shape[0] * taps_w.shape[0]
    return table.reshape(L, -1), valid.reshape(L, -1)


def first_valid(taps, valid, op):
    """Padding taps replaced by the first real tap of their window. A duplicate of a pixel
    already in the window changes no maximum, and it comes no earlier in row-major order
    than its original, so the argmax (first maximum) is still PyTorch's."""
    if not valid.any(axis=1).all():
        raise ValueError(f"{op}: a window lies entirely in the padding; use less padding "
                         f"or a smaller dilation")
    first = taps[np.arange(len(taps)), valid.argmax(axis=1)]
    return np.where(valid, taps, first[:, None])


def as_plane(in_size, *per_axis):
    """1-D arguments (one entry each) padded to a plane of height 1: kernel 1, stride 1,
    padding 0 (each of `per_axis` is (values, what to prepend))."""
    if len(in_size) == 2:
        return (in_size, *(v for v, _ in per_axis))
    return ((1, *in_size), *((fill, *v) for v, fill in per_axis))


@functools.lru_cache(maxsize=256)
def max_pool_plan(in_size, kernel, stride, padding, dilation, ceil_mode, op):
    """The windows of max_pool over a plane in_size = (H, W) or a line (L,) (each other
    argument a tuple of the same length)."""
    spatial = len(in_size)
    in_size, kernel, stride, padding, dilation = as_plane(
        in_size, (kernel, 1), (stride, 1), (padding, 0), (dilation, 1))
    taps = []
    for n, k, s, p, d in zip(in_size, kernel, stride, padding, dilation):
        t = pool_taps(n, pool_output_size(n, k, s, p, d, ceil_mode), k, s, p, d)
        taps.append(first_valid(t, (t >= 0) & (t < n), op))
    ones = [np.ones(t.shape, bool) for t in taps]
    table, _ = plane_windows(*taps, in_size, *ones)
    return Windows(in_size, (len(taps[0]), len(taps[1])), table, spatial=spatial)


@functools.lru_cache(maxsize=256)
def avg_pool_plan(in_size, kernel, stride, padding, ceil_mode, count_include_pad,
                  divisor_override):
    """The windows and weights (1/divisor on real taps, 0 on padding) of avg_pool."""
    spatial = len(in_size)
    in_size, kernel, stride, padding = as_plane(in_size, (kernel, 1), (stride, 1),
                                                (padding, 0))
    taps, valid, divisors = [], [], []
    for n, k, s, p in zip(in_size, kernel, stride, padding):
        n_out = pool_output_size(n, k, s, p, 1, ceil_mode)
        t = pool_taps(n, n_out, k, s, p, 1)
        taps.append(np.clip(t, 0, n - 1))
        valid.append((t >= 0) & (t < n))
        divisors.append(avg_divisors(n, n_out, k, s, p, count_include_pad))
    table, mask = plane_windows(*taps, in_size, *valid)
    divisor = divisor_override or np.outer(*divisors).reshape(-1, 1)
    return Windows(in_size, (len(taps[0]), len(taps[1])), table, mask / divisor,
                   spatial=spatial)


@functools.lru_cache(maxsize=256)
def adaptive_plan(in_size, out_size, kind):
    """adaptive_{avg,max}_pool's windows: PyTorch's bins, a mean (weights 1/bin size) or a
    max (taps past a bin's end repeat its first pixel)."""
    spatial = len(in_size)
    in_size, out_size = as_plane(in_size, (out_size, 1))
    (th, vh), (tw, vw) = (adaptive_taps(n, m) for n, m in zip(in_size, out_size))
    if kind == "max":
        table, _ = plane_windows(np.where(vh, th, th[:, :1]), np.where(vw, tw, tw[:, :1]),
                                 in_size, np.ones(th.shape, bool), np.ones(tw.shape, bool))
        return Windows(in_size, out_size, table, spatial=spatial)
    table, mask = plane_windows(np.where(vh, th, 0), np.where(vw, tw, 0), in_size, vh, vw)
    divisor = np.outer(vh.sum(1), vw.sum(1)).reshape(-1, 1)
    return Windows(in_size, out_size, table, mask / divisor, spatial=spatial)


# ---- the Functions ----------------------------------------------------------------------
def planes(x, plan):
    """x [..., H, W] -> [B, H*W] (B = every leading axis together) and the leading shape."""
    lead = x.shape[:x.ndim - len(plan.in_shape)]
    return x.reshape(-1, math.prod(plan.in_size)), lead


def window_argmax(x, plan):
    """The flat position (y * W + x) of each window's first maximum: PyTorch's
    return_indices. x [..., H, W] -> int64 [..., H_out, W_out]. No graph: indices have no
    gradient (as for topk); MaxPoolFunction then gathers the values at them."""
    xp = get_array_module(x)
    table, _, rows = plan.on(xp)[:3]
    x2, lead = planes(x, plan)
    windows = xp.take(x2, table, axis=1)                        # [B, L, T]
    arg = windows.argmax(axis=-1)                               # first max: PyTorch's ties
    return xp.take(table.reshape(-1), arg + rows).reshape(*lead, *plan.out_shape)


class MaxPoolFunction(Function):
    """out[..., l] = x[..., indices[..., l]] in each plane: the window maxima found by
    `window_argmax`; the gradient goes back to where each maximum was (added where windows
    overlap and share it, assigned where windows are disjoint)."""

    def forward(self, x, indices, plan):
        xp = get_array_module(x)
        x2, _ = planes(x, plan)
        self.idx = indices.reshape(x2.shape[0], -1)                # [B, L]
        self.x_shape, self.plan = x.shape, plan
        return xp.take_along_axis(x2, self.idx, axis=1).reshape(indices.shape)

    def backward(self, grad):
        xp = get_array_module(grad)
        B, P = self.idx.shape[0], math.prod(self.plan.in_size)
        gx = xp.zeros(B * P, dtype=grad.dtype)
        flat = (self.idx + (xp.arange(B) * P)[:, None]).reshape(-1)
        if self.plan.disjoint:
            gx[flat] = grad.reshape(-1)
        else:
            xp.add.at(gx, flat, grad.reshape(-1))
        return gx.reshape(self.x_shape)


def gather_sum(x2, table, weight):
    """out[b, l] = Σ_t weight[l, t] · x2[b, table[l, t]]: x2 [B, P] -> [B, L]."""
    xp = get_array_module(x2)
    windows = xp.take(x2, table, axis=1)                        # [B, L, T]
    if windows.shape[-1] == 1:
        return windows[..., 0] * weight[:, 0]
    return (windows * weight).sum(axis=-1)


class WindowSumFunction(Function):
    """out[..., l] = Σ_t weight[l, t] · x[..., table[l, t]] per plane: average and adaptive
    average pooling, nearest and (bi)linear interpolation. Replaces the composition
    "gather the windows, multiply, sum" with its adjoint done as a gather too (the
    transposed plan), not a scatter-add: ~3x faster on the CPU and deterministic on a GPU."""

    def forward(self, x, plan):
        xp = get_array_module(x)
        table, weight = plan.on(xp, x.dtype)[:2]
        x2, lead = planes(x, plan)
        self.plan, self.lead = plan, lead
        return gather_sum(x2, table, weight).reshape(*lead, *plan.out_shape)

    def backward(self, grad):
        xp = get_array_module(grad)
        inv_table, inv_weight = self.plan.on(xp, grad.dtype)[3:]
        g2 = grad.reshape(-1, math.prod(self.plan.out_size))   # [B, L]
        gx = gather_sum(g2, inv_table, inv_weight)
        return gx.reshape(*self.lead, *self.plan.in_shape)

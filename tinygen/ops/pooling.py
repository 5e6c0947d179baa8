"""Pooling (max, average, adaptive) and resampling as windows gathered from each image plane.

Every op here reads, for each output pixel, a few input pixels of the same plane: its
window. A plan lists each window's taps (positions) and weights, built once per geometry
with NumPy and copied to a device once; then one gather `xp.take(x, table, axis)` lifts
all windows of every plane at once (the gather form of conv's im2col, with no Python loop
over pixels, channels or the batch) and each op is one reduction over the taps:

    max pooling       the first largest tap of each 2-D window (PlaneWindows: table [L, T]
                      of flat positions y * W + x); MaxPoolFunction gathers it there
    average pooling   Σ taps · 1/divisor (0 on padding taps)          } WindowSumFunction,
    adaptive average  the same over PyTorch's bins                     } one weighted sum
    interpolation     Σ taps · nearest / linear weights (ops/resize.py) } along H, one along W

The weighted sums factor over the two axes (SeparableWindows: an average's divisor is a
product of per-axis sizes, a bilinear weight a product of two linear ones), so a k x k
window costs k + k taps, not k². Their backward is the same gather-sum with the transposed
windows (for every input pixel, the outputs that read it): a gather instead of a
scatter-add, so no atomics on a GPU and no one-at-a-time np.add.at on the CPU.

Shapes: N batch, C channels, B = N*C planes, H, W input size (1-D ops are H = 1), K kernel,
S stride, P padding, D dilation, T taps per window; per axis, taps are [n_out, T].
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


# ---- plans: the windows of an axis, of a plane ------------------------------------------
class AxisWindows:
    """The weighted windows of one axis: output o is Σ_t weight[o, t] · x[table[o, t]]
    (table, weight [n_out, T]), and the transposed windows for the backward pass."""

    def __init__(self, n_in, table, weight):
        self.n_in, self.n_out = n_in, table.shape[0]
        self.table, self.weight = table.astype(np.int64), weight.astype(np.float64)
        n_out, T = table.shape
        # windows side by side from pixel 0 (stride = kernel, no padding): a reshape, no gather
        self.tiled = T * n_out <= n_in and (self.table.ravel() == np.arange(T * n_out)).all()
        self.identity = n_out == n_in and T == 1 and self.tiled and (self.weight == 1).all()
        self.inverse = transpose_windows(self.table, self.weight, n_in)
        self._device = {}

    def on(self, xp, dtype):
        """(table, weight, inverse table, inverse weight) tap-major, [T, n_out], as arrays
        of module xp (NumPy or CuPy) with weights in `dtype`: copied to a device once."""
        key = (xp.__name__, np.dtype(dtype).str)
        if key not in self._device:
            arrays = (self.table, self.weight.astype(dtype), self.inverse[0],
                      self.inverse[1].astype(dtype))
            self._device[key] = tuple(xp.asarray(np.ascontiguousarray(a.T)) for a in arrays)
        return self._device[key]

    def apply(self, x3, transpose=False):
        """x3 [A, n_in, B] -> [A, n_out, B] (transpose: the adjoint, [A, n_out, B] ->
        [A, n_in, B]): one gather of every window, tap-major [A, T, n_out, B], then the
        weighted sum over the taps (a sum over a middle axis adds whole contiguous blocks:
        ~3x faster on the CPU than summing a short last axis)."""
        if self.identity:
            return x3
        xp = get_array_module(x3)
        table, weight, inv_table, inv_weight = self.on(xp, x3.dtype)
        if transpose:
            table, weight = inv_table, inv_weight
        T, n_out = table.shape
        A, _, B = x3.shape
        weight = weight[:, :, None]                                    # [T, n_out, 1]
        if self.tiled and not transpose:                               # windows as a view
            windows = x3[:, :n_out * T].reshape(A, n_out, T, B).transpose(0, 2, 1, 3) * weight
        else:
            windows = xp.take(x3, table, axis=1)                       # [A, T, n_out, B]
            windows *= weight
        return windows[:, 0] if T == 1 else windows.sum(axis=1)


def transpose_windows(table, weight, n_in):
    """The adjoint windows: for every input pixel p, the outputs o that read it and with
    what weight, as [n_in, R] arrays (R the most outputs any pixel feeds; unused slots
    read output 0 with weight 0). A gather again, not a scatter-add."""
    n_out, T = table.shape
    p, w = table.ravel(), weight.ravel()
    o = np.repeat(np.arange(n_out), T)
    keep = w != 0
    p, o, w = p[keep], o[keep], w[keep]
    order = np.argsort(p, kind="stable")
    p, o, w = p[order], o[order], w[order]
    counts = np.bincount(p, minlength=n_in)
    rank = np.arange(len(p)) - (np.cumsum(counts) - counts)[p]   # slot of each entry
    R = max(int(counts.max(initial=0)), 1)
    inv_table = np.zeros((n_in, R), np.int64)
    inv_weight = np.zeros((n_in, R), w.dtype)
    inv_table[p, rank], inv_weight[p, rank] = o, w
    return inv_table, inv_weight


class SeparableWindows:
    """A weighted window sum over a plane that factors into one along H, then one along W
    (average pooling: the divisor is a product of per-axis sizes; bilinear: weights are
    products): k_h + k_w taps per output instead of k_h * k_w. A 1-D op (spatial=1) is a
    plane with H = 1 whose H axis the tensors do not have."""

    def __init__(self, rows, cols, spatial=2):
        self.rows, self.cols, self.spatial = rows, cols, spatial
        self.in_size, self.out_size = (rows.n_in, cols.n_in), (rows.n_out, cols.n_out)
        self.in_shape, self.out_shape = self.in_size[2 - spatial:], self.out_size[2 - spatial:]


class PlaneWindows:
    """The 2-D windows of max pooling: table [L, T] of flat positions y * W + x, L =
    H_out * W_out outputs, T = k_h * k_w taps in row-major window order."""

    def __init__(self, in_size, out_size, table, spatial=2):
        self.in_size, self.out_size = tuple(in_size), tuple(out_size)
        self.in_shape, self.out_shape = self.in_size[2 - spatial:], self.out_size[2 - spatial:]
        self.table = table.astype(np.int64)
        L, T = table.shape
        # windows that share no pixel: max pooling's gradient is a plain assignment
        self.disjoint = len(np.unique(table)) == table.size
        self.rows = np.arange(L) * T                   # table.ravel()[rows + t] is tap t
        self._device = {}

    def on(self, xp):
        """(table, rows) as arrays of module xp, copied to a device once."""
        if xp.__name__ not in self._device:
            self._device[xp.__name__] = (xp.asarray(self.table), xp.asarray(self.rows))
        return self._device[xp.__name__]


def plane_table(taps_h, taps_w, W):
    """Per-axis taps [H_out, k_h], [W_out, k_w] -> the 2-D table [H_out*W_out, k_h*k_w]
    (window order row-major, as PyTorch scans a window)."""
    table = taps_h[:, None, :, None] * W + taps_w[None, :, None, :]
    return table.reshape(taps_h.shape[0] * taps_w.shape[0], -1)


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
    return PlaneWindows(in_size, (len(taps[0]), len(taps[1])),
                        plane_table(*taps, in_size[1]), spatial)


@functools.lru_cache(maxsize=256)
def avg_pool_plan(in_size, kernel, stride, padding, ceil_mode, count_include_pad,
                  divisor_override):
    """avg_pool's windows per axis: weights 1/divisor on real taps, 0 on padding taps
    (which read pixel 0 or n-1 instead); divisor_override goes into the H axis."""
    spatial = len(in_size)
    in_size, kernel, stride, padding = as_plane(in_size, (kernel, 1), (stride, 1),
                                                (padding, 0))
    axes = []
    for i, (n, k, s, p) in enumerate(zip(in_size, kernel, stride, padding)):
        n_out = pool_output_size(n, k, s, p, 1, ceil_mode)
        t = pool_taps(n, n_out, k, s, p, 1)
        valid = (t >= 0) & (t < n)
        if divisor_override:
            divisor = np.full((n_out, 1), divisor_override if i == 0 else 1)
        else:
            divisor = avg_divisors(n, n_out, k, s, p, count_include_pad)[:, None]
        axes.append(AxisWindows(n, np.clip(t, 0, n - 1), valid / divisor))
    return SeparableWindows(*axes, spatial)


@functools.lru_cache(maxsize=256)
def adaptive_plan(in_size, out_size, kind):
    """adaptive_{avg,max}_pool's windows: PyTorch's bins, a mean (weights 1/bin size) or a
    max (taps past a bin's end repeat its first pixel)."""
    spatial = len(in_size)
    in_size, out_size = as_plane(in_size, (out_size, 1))
    (th, vh), (tw, vw) = (adaptive_taps(n, m) for n, m in zip(in_size, out_size))
    if kind == "max":
        table = plane_table(np.where(vh, th, th[:, :1]), np.where(vw, tw, tw[:, :1]),
                            in_size[1])
        return PlaneWindows(in_size, out_size, table, spatial)
    return SeparableWindows(*(AxisWindows(n, np.where(v, t, 0), v / v.sum(1, keepdims=True))
                              for n, t, v in zip(in_size, (th, tw), (vh, vw))), spatial)


# ---- the Functions ----------------------------------------------------------------------
def planes(x, plan):
    """x [..., H, W] (or [..., L]) -> [B, H, W] (B = every leading axis together) and the
    leading shape."""
    lead = x.shape[:x.ndim - len(plan.in_shape)]
    return x.reshape(-1, *plan.in_size), lead


def window_argmax(x, plan):
    """The flat position (y * W + x) of each window's first maximum: PyTorch's
    return_indices. x [..., H, W] -> int64 [..., H_out, W_out]. No graph: indices have no
    gradient (as for topk); MaxPoolFunction then gathers the values at them."""
    xp = get_array_module(x)
    table, rows = plan.on(xp)
    x3, lead = planes(x, plan)
    windows = xp.take(x3.reshape(x3.shape[0], -1), table, axis=1)    # [B, L, T]
    arg = windows.argmax(axis=-1)                               # first max: PyTorch's ties
    return xp.take(table.reshape(-1), arg + rows).reshape(*lead, *plan.out_shape)


class MaxPoolFunction(Function):
    """out[..., l] = x[..., indices[..., l]] in each plane: the window maxima found by
    `window_argmax`; the gradient goes back to where each maximum was (added where windows
    overlap and share it, assigned where windows are disjoint)."""

    def forward(self, x, indices, plan):
        xp = get_array_module(x)
        x3, _ = planes(x, plan)
        self.idx = indices.reshape(x3.shape[0], -1)                # [B, L]
        self.x_shape, self.plan = x.shape, plan
        return xp.take_along_axis(x3.reshape(x3.shape[0], -1), self.idx, axis=1).reshape(
            indices.shape)

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


class WindowSumFunction(Function):
    """out[..., i, j] = Σ_a Σ_b w_h[i, a] w_w[j, b] x[..., table_h[i, a], table_w[j, b]]:
    average and adaptive average pooling, nearest and (bi)linear interpolation, done as one
    weighted window sum along H, then one along W (SeparableWindows).

    Replaces the composition "gather the windows, multiply, sum" with its adjoint done as a
    gather too (the transposed windows), not a scatter-add: no atomics on a GPU, and on the
    CPU a gather of R numbers per pixel instead of np.add.at's one-at-a-time updates."""

    def forward(self, x, plan):
        x3, self.lead = planes(x, plan)                                # [B, H, W]
        W = x3.shape[2]
        self.plan = plan
        y = plan.rows.apply(x3)                                        # [B, H_out, W]
        y = plan.cols.apply(y.reshape(-1, W, 1))                       # [B*H_out, W_out, 1]
        return y.reshape(*self.lead, *plan.out_shape)

    def backward(self, grad):
        W, (Ho, Wo) = self.plan.in_size[1], self.plan.out_size
        g = self.plan.cols.apply(grad.reshape(-1, Wo, 1), transpose=True)   # [B*H_out, W, 1]
        g = self.plan.rows.apply(g.reshape(-1, Ho, W), transpose=True)      # [B, H, W]
        return g.reshape(*self.lead, *self.plan.in_shape)

"""im2col and col2im: a convolution's sliding windows as one gather, and its adjoint.

A convolution slides a [C, K_h, K_w] kernel over the image. Copy the patch under the kernel
at every output pixel into one column of a matrix ("im2col") and the whole layer is one
BLAS product (Chellapilla, Puri & Simard 2006; Caffe's im2col). "col2im" is the way back:
it adds every column entry onto the pixel it was copied from, which is exactly the
gradient of im2col, and it is also a transposed convolution's forward (ops/conv.py).

Images are "rows" [C, H, W, N], batch last (backend.py defines that layout), so every
entry moved is a run of N contiguous numbers. Think of the image zero-padded to
[C, H_p, W_p, N]; kernel entry (a, b) at output pixel (i, j) reads padded pixel

    y = d_h a + S_h i,   x = d_w b + S_w j          (d dilation, S stride)

and `window_index` lists that flat padded pixel y W_p + x for every (a, b, i, j), once per
geometry (cached, and on the device once). Then

    im2col:  cols[c, (a, b, i, j), n] = padded[c, window_index, n]        one gather (take)
    col2im:  padded[c, window_index, n] += cols[c, (a, b, i, j), n]       one scatter-add

With stride 1 in height, kernel row a at output row i reads padded row d_h a + i, so the
columns of the kernel's width alone, over every padded row, hold the whole of im2col in
1/K_h of its memory (`width_im2col` -> `RowTaps`; ops/conv.py picks it where faster).

Padding is given per side, ((top, bottom), (left, right)), so PyTorch's odd 'same' split
needs nothing special; a pair (P_h, P_w) means P_h on top and bottom, P_w left and right.

Launches on the GPU (counted on tests/cupy_emulator.py): im2col is a zero-padded copy (2)
and one take; col2im is a zeroed buffer, one scatter-add (CuPy's atomic add.at) and one
crop copy: a handful per call, where the former loop over kernel offsets issued ~5 per
offset (80 for a 4x4 kernel). On NumPy, im2col is the same gather: per call 0.4-1.2x the
time of the slice loop it replaced on the DCGAN / classifier / residual-net layers (2-core
x86-64, shared machine: noisy), never clearly slower. But np.add.at is 50-70x slower than
adding strided slices there (same machine), so col2im on NumPy sums one slice per kernel
offset instead (`col2im_by_slices`): the same numbers, fast on the CPU and many launches
on a GPU, hence the one split by backend. (The GPU's atomic adds sum in no fixed order, so
col2im's last bits can differ from run to run there, as with PyTorch's non-deterministic
cuDNN backward; ops/conv.cu has a deterministic gather kernel, off by default.)
"""

import functools
import typing

import numpy as np

from tinygen.backend import get_array_module
from tinygen.ops import kernels


def sides(padding):
    """(P_h, P_w) or ((top, bottom), (left, right)) -> ((top, bottom), (left, right))."""
    return tuple((p, p) if isinstance(p, (int, np.integer)) else tuple(p) for p in padding)


def conv_out_size(size, kernel, stride, padding, dilation=(1, 1)):
    """(H_out, W_out) of a convolution of an (H, W) image: PyTorch's formula
    (n + p_lo + p_hi - d (k - 1) - 1) // s + 1 per axis."""
    return tuple((n + lo + hi - d * (k - 1) - 1) // s + 1 for n, k, s, (lo, hi), d in
                 zip(size, kernel, stride, sides(padding), dilation))


@functools.lru_cache(maxsize=256)
def _window_index(xp, size, kernel, stride, padding, dilation, out_size):
    (Kh, Kw), (Sh, Sw), (dh, dw), (Ho, Wo) = kernel, stride, dilation, out_size
    Wp = size[1] + sum(padding[1])                                # padded width
    y = dh * np.arange(Kh)[:, None] + Sh * np.arange(Ho)          # [K_h, H_out] padded rows
    x = dw * np.arange(Kw)[:, None] + Sw * np.arange(Wo)          # [K_w, W_out] padded cols
    idx = y[:, None, :, None] * Wp + x[None, :, None, :]          # [K_h, K_w, H_out, W_out]
    return xp.asarray(idx.reshape(-1))


def window_index(xp, size, kernel, stride, padding, dilation, out_size):
    """Flat padded pixel y W_p + x read by kernel entry (a, b) at output pixel (i, j), for
    every (a, b, i, j) in that order: [K_h*K_w*H_out*W_out] ints on xp's device."""
    return _window_index(xp, tuple(size), tuple(kernel), tuple(stride), sides(padding),
                         tuple(dilation), tuple(out_size))


def windows(size, kernel, stride, padding, dilation, out_size):
    """(H_out, W_out): out_size, checked, or all the windows that fit when it is None.
    A transposed convolution asks for fewer than fit (its input size) when its
    output_padding reaches past the stride (possible when the dilation is larger)."""
    fit = conv_out_size(size, kernel, stride, padding, dilation)
    if out_size is None:
        return fit
    if len(out_size) != 2 or not all(0 < o <= f for o, f in zip(out_size, fit)):
        raise ValueError(f"im2col: out_size {tuple(out_size)} does not match the image "
                         f"{tuple(size)}, kernel {kernel}, stride {stride}, padding {padding}")
    return tuple(out_size)


def zero_padded(rows, padding):
    """rows [C, H, W, N] -> [C, H_p, W_p, N] with zeros around (rows itself if no padding)."""
    (pt, pb), (pl, pr) = sides(padding)
    if pt == pb == pl == pr == 0:
        return rows
    C, H, W, N = rows.shape
    out = get_array_module(rows).zeros((C, H + pt + pb, W + pl + pr, N), dtype=rows.dtype)
    out[:, pt:pt + H, pl:pl + W] = rows
    return out


def im2col(rows, kernel, stride, padding, out_size=None, dilation=(1, 1)):
    """Rows [C, H, W, N] -> cols [C*K_h*K_w, H_out*W_out*N]:
    cols[(c, a, b), (i, j, n)] = padded[c, d_h a + S_h i, d_w b + S_w j, n], one gather."""
    C, H, W, N = rows.shape
    Ho, Wo = windows((H, W), kernel, stride, padding, dilation, out_size)
    if _kernel_fits(rows, (H, W), kernel, stride, padding, dilation, (Ho, Wo)):
        from tinygen.ops import kernel_calls  # conv.cu's im2col (kernel_calls imports ops)
        return kernel_calls.im2col_cuda(rows, kernel, stride, _symmetric(padding), (Ho, Wo))
    xp = get_array_module(rows)
    padded = zero_padded(rows, padding)
    idx = window_index(xp, (H, W), kernel, stride, padding, dilation, (Ho, Wo))
    flat = padded.reshape(C, -1, N)                                # [C, H_p*W_p, N]
    return xp.take(flat, idx, axis=1).reshape(C * kernel[0] * kernel[1], Ho * Wo * N)


class RowTaps(typing.NamedTuple):
    """A stride-1 (in height) convolution's im2col, K_h times smaller (`width_im2col`).

    Kernel row a at output row i reads padded row d_h a + i, so with the columns of the
    kernel's width taken for every padded row, `cols` [C*K_w, H_p*W_out*N], kernel row a's
    block of the full im2col is the contiguous column slice `tap(a)`:

        im2col(...)[(c, a, b), (i, j, n)] = tap(a)[(c, b), (i, j, n)]"""

    cols: typing.Any       # [C*K_w, H_p*W_out*N]
    dilation: int          # d_h
    out_rows: int          # H_out
    run: int               # columns per image row: W_out*N

    def span(self, a):
        """The columns of kernel row a's block: padded rows d_h a .. d_h a + H_out - 1."""
        first = self.dilation * a * self.run
        return slice(first, first + self.out_rows * self.run)

    def tap(self, a):
        """Kernel row a's block of the full im2col, [C*K_w, H_out*W_out*N] (a view)."""
        return self.cols[:, self.span(a)]


def width_im2col(rows, kernel, stride, padding, out_size=None, dilation=(1, 1)):
    """Rows [C, H, W, N] -> RowTaps: im2col with the kernel's width only (1 x K_w windows)
    over every padded row, for a convolution of stride 1 in height. 1/K_h of im2col's
    memory; the conv products read the kernel rows' blocks as slices (ops/conv.py)."""
    if stride[0] != 1:
        raise ValueError(f"width_im2col: the stride in height must be 1, got {stride}")
    _, H, W, N = rows.shape
    Ho, Wo = windows((H, W), kernel, stride, padding, dilation, out_size)
    Hp = H + sum(sides(padding)[0])
    cols = im2col(rows, (1, kernel[1]), stride, padding, (Hp, Wo), (1, dilation[1]))
    return RowTaps(cols, dilation[0], Ho, Wo * N)


def col2im(cols, shape, kernel, stride, padding, dilation=(1, 1), out_size=None):
    """The adjoint of im2col: cols [C*K_h*K_w, H_out*W_out*N] -> rows [C, H, W, N], every
    entry added onto the pixel it was copied from (those landing in the padding dropped)."""
    xp = get_array_module(cols)
    C, H, W, N = shape
    out_size = windows((H, W), kernel, stride, padding, dilation, out_size)
    if _kernel_fits(cols, (H, W), kernel, stride, padding, dilation, out_size):
        from tinygen.ops import kernel_calls
        return kernel_calls.col2im_cuda(cols, shape, kernel, stride, _symmetric(padding))
    if xp is np:
        return col2im_by_slices(cols, shape, kernel, stride, padding, dilation, out_size)
    (pt, pb), (pl, pr) = sides(padding)
    idx = window_index(xp, (H, W), kernel, stride, padding, dilation, out_size)
    padded = xp.zeros((C, (H + pt + pb) * (W + pl + pr), N), dtype=cols.dtype)
    xp.add.at(padded, (slice(None), idx), cols.reshape(C, -1, N))  # one atomic scatter-add
    padded = padded.reshape(C, H + pt + pb, W + pl + pr, N)
    return xp.ascontiguousarray(padded[:, pt:pt + H, pl:pl + W])


def _kernel_fits(array, size, kernel, stride, padding, dilation, out_size):
    """Whether conv.cu's im2col / col2im (ops/kernels.py: "im2col", when switched on) can
    do this call: CuPy float32, no dilation, the same padding on both sides, every window."""
    return (kernels.use("im2col", array) and tuple(dilation) == (1, 1)
            and all(lo == hi for lo, hi in sides(padding))
            and tuple(out_size) == conv_out_size(size, kernel, stride, padding))


def _symmetric(padding):
    return tuple(lo for lo, _ in sides(padding))


def inside(offset, S, P, n_out, n):
    """Along one axis, the kernel tap at `offset` (d a) reads input pixel y = offset + S i - P
    at output positions i = 0 .. n_out-1. Returns (first i, how many, first y) for the
    positions where y lies in the image [0, n) rather than in the padding, or None."""
    lo = max(0, -((offset - P) // S))             # ceil((P - offset) / S): first y >= 0
    hi = min(n_out, (n - 1 + P - offset) // S + 1)  # one past the last y <= n - 1
    return (lo, hi - lo, offset + S * lo - P) if hi > lo else None


def col2im_by_slices(cols, shape, kernel, stride, padding, dilation, out_size):
    """col2im as K_h*K_w strided `+=`s (Caffe's col2im loop), the fast way on NumPy.

    Only the part of each kernel offset's slice that lands inside the image is added
    (`inside`), so no padded buffer is built. With a stride, offset a only reaches image
    rows y = d_h a - P_top (mod S_h), so the offsets fall into S_h x S_w "phases" that
    never touch each other's pixels. A phase that several offsets add into is summed in a
    small buffer of its own pixels, where consecutive outputs are neighbours in memory (long
    contiguous runs, and it stays in cache), then copied into place once: ~1.2x faster
    than adding into strided rows. An offset whose slice covers its whole phase (the
    centre tap of a padded 3x3 kernel does) is copied first, so that phase needs no zeros;
    a phase only one offset reaches is copied straight into place (a 3x3 stride-2 layer's
    input gradient: 12-26 % faster, 2-core EPYC, AVX-512). (This is the col2im of tinygen
    before the gather, with dilation and padding per side added.)
    """
    C, H, W, N = shape
    (Kh, Kw), (Sh, Sw), (dh, dw) = kernel, stride, dilation
    (pt, _), (pl, _) = sides(padding)
    Ho, Wo = out_size
    cols = cols.reshape(C, Kh, Kw, Ho, Wo, N)
    rows = np.empty(shape, dtype=cols.dtype)
    for r in range(Sh):
        for q in range(Sw):       # the phase of image pixels y = r (mod S_h), x = q (mod S_w)
            dest = rows[:, r::Sh, q::Sw]
            taps = [(a, b, inside(dh * a, Sh, pt, Ho, H), inside(dw * b, Sw, pl, Wo, W))
                    for a in range(Kh) if (dh * a - pt) % Sh == r
                    for b in range(Kw) if (dw * b - pl) % Sw == q]
            taps = [t for t in taps if t[2] is not None and t[3] is not None]
            taps.sort(key=lambda t: (t[2][1], t[3][1]) != dest.shape[1:3])  # covering first
            covered = bool(taps) and (taps[0][2][1], taps[0][3][1]) == dest.shape[1:3]
            several = len(taps) > 1 and (Sh, Sw) != (1, 1)
            phase = np.empty(dest.shape, dtype=cols.dtype) if several else dest
            if not covered:
                phase[...] = 0
            for n, (a, b, (i, m, y), (j, k, x)) in enumerate(taps):   # y = r + S_h (y // S_h)
                part = cols[:, a, b, i:i + m, j:j + k]
                target = phase[:, y // Sh:y // Sh + m, x // Sw:x // Sw + k]
                if n == 0 and covered:
                    target[...] = part
                else:
                    target += part
            if several:
                dest[...] = phase
    return rows

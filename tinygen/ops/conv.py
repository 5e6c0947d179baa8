"""2-D convolution and transposed convolution as one matrix product: im2col and col2im.

A convolution slides a [C_in, K_h, K_w] kernel over the image. Copy the patch under the
kernel at every output pixel into one column of a matrix ("im2col") and the whole layer is
a single BLAS product: weight [C_out, C_in*K_h*K_w] @ cols [C_in*K_h*K_w, H_out*W_out*N]
(Chellapilla, Puri & Simard 2006; Caffe's im2col). "col2im" is the way back: it adds every
column entry onto the pixel it was copied from, which is exactly the gradient of im2col.

A transposed convolution is the same pair read backwards: conv_transpose2d's forward is
conv2d's input gradient, and its input gradient is conv2d's forward (Dumoulin & Visin
2016, "A guide to convolution arithmetic", section 4). So both Functions below are built
from two helpers, `conv_output` and `conv_input_grad`, and each piece of arithmetic is
written once. Each Function replaces the composition "pad, then for every kernel offset
a strided slice times one weight column, summed" (K_h*K_w slices and products, see the
loop reference in tests/test_conv.py). Fused for speed: one node, one matmul per
direction, no per-pixel Python, and no padded copy of the input.

Shapes: N batch, C channels (C_in, C_out), H, W image size, K kernel (K_h, K_w), S stride,
P padding, H_out, W_out the output size. Inside this file images are kept as "rows"
[C, H, W, N], batch last (backend.py defines that layout: `to_batch_last`,
`from_batch_last`, `is_batch_last`): every copy in im2col and col2im then moves runs of N
contiguous numbers instead of a few strided pixels. A layer hands its result back as an
[N, C, H, W] view of its rows, and the next conv layer finds its input already in rows
order. The zero padding is never built either: im2col writes zeros where a kernel offset
sees it, and col2im drops what lands there (`inside` works out which pixels those are).
"""

import numbers

from tinygen.autograd import Function
from tinygen.backend import from_batch_last, get_array_module, row_sums, to_batch_last


# ---- arguments --------------------------------------------------------------------------
def pair(value, name, op):
    """An int or a pair of ints as a (height, width) tuple; a clear error otherwise."""
    if isinstance(value, numbers.Integral):
        pair_ = (value, value)
    else:
        pair_ = tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(pair_) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                  for v in pair_):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    return int(pair_[0]), int(pair_[1])


def output_size(x_shape, kernel, stride, padding):
    """(H_out, W_out): how many kernel positions fit along each axis (PyTorch's formula,
    no dilation) for an input [N, C, H, W]."""
    return tuple((n + 2 * p - k) // s + 1
                 for n, k, s, p in zip(x_shape[2:], kernel, stride, padding))


def check_conv_args(op, x, weight, bias, stride, padding, output_padding=None):
    """Validate conv2d / conv_transpose2d arguments, returning stride, padding (and
    output_padding) as pairs. Every error names the op and the shapes involved."""
    stride, padding = pair(stride, "stride", op), pair(padding, "padding", op)
    if min(stride) < 1:
        raise ValueError(f"{op}: stride must be positive, got {stride}")
    if min(padding) < 0:
        raise ValueError(f"{op}: padding must be non-negative, got {padding}")
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input [N, C, H, W], got shape {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D weight, got shape {weight.shape}")
    transposed = output_padding is not None
    w_in, c_out = (0, 1) if transposed else (1, 0)   # which weight axis holds C_in, C_out
    layout = "[C_in, C_out, K_h, K_w]" if transposed else "[C_out, C_in, K_h, K_w]"
    if x.shape[1] != weight.shape[w_in]:
        raise ValueError(f"{op}: input {x.shape} has {x.shape[1]} channels, but the weight "
                         f"{weight.shape} ({layout}) expects {weight.shape[w_in]}")
    if bias is not None and bias.shape != (weight.shape[c_out],):
        raise ValueError(f"{op}: bias must have shape ({weight.shape[c_out]},) for the "
                         f"weight {weight.shape}, got {bias.shape}")
    K = weight.shape[2:]
    if not transposed:
        padded = tuple(n + 2 * p for n, p in zip(x.shape[2:], padding))
        if padded[0] < K[0] or padded[1] < K[1]:
            raise ValueError(f"{op}: kernel {K} is larger than the padded input {padded} "
                             f"(input {x.shape}, padding {padding})")
        return stride, padding
    output_padding = pair(output_padding, "output_padding", op)
    if not all(0 <= o < s for o, s in zip(output_padding, stride)):
        raise ValueError(f"{op}: output_padding {output_padding} must be non-negative and "
                         f"smaller than the stride {stride}")
    out = [(n - 1) * s - 2 * p + k + o for n, s, p, k, o in
           zip(x.shape[2:], stride, padding, K, output_padding)]
    if min(out) < 1:
        raise ValueError(f"{op}: input {x.shape} with kernel {K}, stride {stride} and "
                         f"padding {padding} gives an empty output {tuple(out)}")
    return stride, padding, output_padding


# ---- im2col and col2im, on images kept as rows [C, H, W, N] ----------------------------
def inside(a, S, P, n_out, n):
    """Along one axis, kernel offset a at output positions i = 0 .. n_out-1 reads input
    pixel y = a + S i - P. Returns (slice of i, slice of y) for the positions where y lies
    in the image [0, n) rather than in the zero padding, or None if there are none.
    Padding is never materialised: those im2col entries are zeros, col2im drops them."""
    lo = max(0, -((a - P) // S))                  # ceil((P - a) / S): first y >= 0
    hi = min(n_out, (n - 1 + P - a) // S + 1)     # one past the last y <= n - 1
    if hi <= lo:
        return None
    return slice(lo, hi), slice(a + S * lo - P, a + S * (hi - 1) - P + 1, S)


def im2col(rows, kernel, stride, padding, out_size):
    """Rows [C, H, W, N] -> cols [C*K_h*K_w, H_out*W_out*N].

    cols[(c, a, b), (i, j, n)] = rows[c, a + S_h i - P_h, b + S_w j - P_w, n]: the pixel
    under kernel entry (a, b) when the kernel sits at output pixel (i, j), 0 where that
    falls in the padding. One strided copy per kernel offset (a, b), never a loop over
    pixels or images; then zeros for the border strips that the offset sees as padding.
    """
    C, H, W, N = rows.shape
    (Kh, Kw), (Sh, Sw), (Ph, Pw), (Ho, Wo) = kernel, stride, padding, out_size
    cols = get_array_module(rows).empty((C, Kh, Kw, Ho, Wo, N), dtype=rows.dtype)
    for a in range(Kh):
        for b in range(Kw):
            col = cols[:, a, b]                                   # [C, H_out, W_out, N]
            ri, rj = inside(a, Sh, Ph, Ho, H), inside(b, Sw, Pw, Wo, W)
            if ri is None or rj is None:
                col[...] = 0
                continue
            (i, y), (j, x) = ri, rj
            col[:, i, j] = rows[:, y, x]
            col[:, :i.start] = 0
            col[:, i.stop:] = 0
            col[:, i, :j.start] = 0
            col[:, i, j.stop:] = 0
    return cols.reshape(C * Kh * Kw, Ho * Wo * N)


def col2im(cols, shape, kernel, stride, padding):
    """The adjoint of im2col: cols [C*K_h*K_w, H_out*W_out*N] -> rows [C, H, W, N], each
    column entry added onto the pixel it was copied from (entries from the padding are
    dropped).

    Windows overlap when S < K, so the same pixel gets contributions from several kernel
    offsets, accumulated one offset at a time (as Caffe's col2im does); each `+=` is one
    vectorised op over all pixels and images. With a stride, offset a only reaches the
    rows y = a - P (mod S), so the offsets fall into S_h x S_w "phases" that never touch
    each other's pixels. Each phase is summed in a small buffer of its own pixels, where
    consecutive outputs are neighbours in memory (long contiguous runs, and it stays in
    cache), then copied into place once: ~1.2x faster than adding into strided `rows`.
    """
    C, H, W, N = shape
    (Kh, Kw), (Sh, Sw), (Ph, Pw) = kernel, stride, padding
    Ho, Wo = (H + 2 * Ph - Kh) // Sh + 1, (W + 2 * Pw - Kw) // Sw + 1
    cols = cols.reshape(C, Kh, Kw, Ho, Wo, N)
    xp = get_array_module(cols)
    one_phase = (Sh, Sw) == (1, 1)                # stride 1: the phase is the whole image
    rows = (xp.zeros if one_phase else xp.empty)(shape, dtype=cols.dtype)
    for r in range(Sh):
        for q in range(Sw):       # the phase of pixels y = r (mod S_h), x = q (mod S_w)
            phase = rows if one_phase else xp.zeros(
                (C, len(range(r, H, Sh)), len(range(q, W, Sw)), N), dtype=cols.dtype)
            for a in range((r + Ph) % Sh, Kh, Sh):
                for b in range((q + Pw) % Sw, Kw, Sw):
                    ri, rj = inside(a, Sh, Ph, Ho, H), inside(b, Sw, Pw, Wo, W)
                    if ri is None or rj is None:
                        continue
                    (i, y), (j, x) = ri, rj
                    y0, x0 = y.start // Sh, x.start // Sw        # y = r + S_h y', ...
                    pixels = phase[:, y0:y0 + i.stop - i.start, x0:x0 + j.stop - j.start]
                    pixels += cols[:, a, b, i, j]
            if not one_phase:
                rows[:, r::Sh, q::Sw] = phase
    return rows


# ---- the two directions of one convolution ----------------------------------------------
def conv_cols(x, kernel, stride, padding):
    """im2col of an image batch x [N, C, H, W] -> [C*K_h*K_w, H_out*W_out*N]."""
    out_size = output_size(x.shape, kernel, stride, padding)
    return im2col(to_batch_last(x), kernel, stride, padding, out_size)


def conv_output(weight, cols, N, out_size, bias=None):
    """weight [A, B, K_h, K_w] as a matrix [A, B*K_h*K_w] @ cols (+ bias [A]) -> images
    [N, A, H_out, W_out]. conv2d's forward, and conv_transpose2d's input gradient (with
    A = C_in)."""
    out = weight.reshape(weight.shape[0], -1) @ cols            # [A, H_out*W_out*N]
    if bias is not None:
        out += bias[:, None]
    return from_batch_last(out.reshape(-1, *out_size, N))


def conv_input_grad(grad_rows, weight, x_shape, stride, padding):
    """weightᵀ @ grad, then col2im: the gradient of conv2d with respect to its input
    x [N, B, H, W], given the output gradient as rows [A, H_out*W_out*N]. conv2d's input
    gradient, and conv_transpose2d's forward (with A = C_in, B = C_out)."""
    N, B, H, W = x_shape
    gcols = weight.reshape(weight.shape[0], -1).T @ grad_rows  # [B*K_h*K_w, H_out*W_out*N]
    return from_batch_last(col2im(gcols, (B, H, W, N), weight.shape[2:], stride, padding))


# ---- the Functions ----------------------------------------------------------------------
class Conv2dFunction(Function):
    """out[n, o] = Σ_c weight[o, c] ⋆ x[n, c] + bias[o] (cross-correlation, as in PyTorch).
    x [N, C_in, H, W], weight [C_out, C_in, K_h, K_w], bias [C_out] -> [N, C_out, H_out, W_out].
    stride and padding are (h, w) pairs; `check_conv_args` has validated everything."""

    def forward(self, x, weight, bias=None, stride=(1, 1), padding=(0, 0)):
        K = weight.shape[2:]
        self.cols = conv_cols(x, K, stride, padding)              # [C_in*K*K, H_out*W_out*N]
        out = conv_output(weight, self.cols, x.shape[0],
                          output_size(x.shape, K, stride, padding), bias)
        self.weight, self.x_shape, self.has_bias = weight, x.shape, bias is not None
        self.stride, self.padding = stride, padding
        return out                                                # [N, C_out, H_out, W_out]

    def backward(self, grad):
        g = to_batch_last(grad).reshape(grad.shape[1], -1)        # [C_out, H_out*W_out*N]
        gx = gw = None
        if self.needs_input_grad[0]:
            gx = conv_input_grad(g, self.weight, self.x_shape, self.stride, self.padding)
        if self.needs_input_grad[1]:   # [C_out, H_out*W_out*N] @ [H_out*W_out*N, C_in*K*K]
            gw = (g @ self.cols.T).reshape(self.weight.shape)
        if not self.has_bias:
            return gx, gw
        return gx, gw, row_sums(g)[:, 0]


class ConvTranspose2dFunction(Function):
    """The transpose (adjoint) of Conv2dFunction: conv2d's input gradient used as a layer, which
    upsamples by the stride. x [N, C_in, H, W], weight [C_in, C_out, K_h, K_w] (PyTorch's
    layout), bias [C_out] -> [N, C_out, (H-1) S - 2P + K + output_padding, ...]."""

    def forward(self, x, weight, bias=None, stride=(1, 1), padding=(0, 0),
                output_padding=(0, 0)):
        N, _, H, W = x.shape
        out_shape = (N, weight.shape[1]) + tuple(
            (n - 1) * s - 2 * p + k + o
            for n, s, p, k, o in zip((H, W), stride, padding, weight.shape[2:], output_padding))
        self.x_rows = to_batch_last(x).reshape(x.shape[1], -1)    # [C_in, H*W*N]
        out = conv_input_grad(self.x_rows, weight, out_shape, stride, padding)
        if bias is not None:
            out += bias[:, None, None]
        self.weight, self.x_shape, self.has_bias = weight, x.shape, bias is not None
        self.stride, self.padding = stride, padding
        return out                                                # [N, C_out, H_out, W_out]

    def backward(self, grad):
        N, _, H, W = self.x_shape
        grows = to_batch_last(grad)                               # [C_out, H_out, W_out, N]
        gx = gw = None
        if self.needs_input_grad[0] or self.needs_input_grad[1]:
            gcols = im2col(grows, self.weight.shape[2:], self.stride, self.padding, (H, W))
            if self.needs_input_grad[0]:   # conv2d of the output gradient
                gx = conv_output(self.weight, gcols, N, (H, W))
            if self.needs_input_grad[1]:   # [C_in, H*W*N] @ [H*W*N, C_out*K*K]
                gw = (self.x_rows @ gcols.T).reshape(self.weight.shape)
        if not self.has_bias:
            return gx, gw
        return gx, gw, row_sums(grows.reshape(grows.shape[0], -1))[:, 0]

"""2-D convolution and transposed convolution (groups, dilation, stride, padding per side),
each one matrix product over im2col's columns (ops/im2col.py).

conv2d's forward is weight [C_out, C_in/G * K_h*K_w] @ im2col(x); its input gradient is
col2im(weightᵀ @ grad), its weight gradient grad @ colsᵀ. A transposed convolution is the
same pair read backwards: conv_transpose2d's forward is conv2d's input gradient, and its
input gradient is conv2d's forward (Dumoulin & Visin 2016, "A guide to convolution
arithmetic", section 4). So both Functions below are built from two helpers,
`conv_output` and `conv_input_grad`, and each piece of arithmetic is written once.

Groups (Krizhevsky et al. 2012; depthwise when G = C_in, Chollet 2017) split the channels
into G independent convolutions: the weight matrix becomes [G, C_out/G, C_in/G * K*K] and
the columns [G, C_in/G * K*K, H_out*W_out*N], and the product is one batched matmul.
Dilation d spaces the kernel's taps d pixels apart (Yu & Koltun 2016); im2col handles it.

For a stride-1 layer on the CPU the columns may come K_h times smaller, as one block per
kernel row (im2col.RowTaps, `conv_columns`); the forward then multiplies by the kernel rows
stacked and adds the K_h row-shifted parts.

Each Function replaces the composition "pad, then for every kernel offset a strided slice
times one weight column, summed" (K_h*K_w slices and products: the `composed` of the conv
cases in tests/op_cases.py). Fused for speed: one node, one (batched) matmul per direction.

Shapes: N batch, C channels (C_in, C_out), G groups, H, W image size, K kernel (K_h, K_w),
S stride, P padding, d dilation, H_out, W_out the output size. Images are kept as rows
[C, H, W, N], batch last (backend.py: `to_batch_last`, `from_batch_last`): a layer hands
its result back as an [N, C, H, W] view of its rows, and the next conv layer finds its
input already in rows order.
"""

import numbers

import numpy as np

from tinygen.autograd import Function
from tinygen.backend import from_batch_last, get_array_module, row_sums, to_batch_last
from tinygen.blocked import matmul, matmul_long_inner
from tinygen.ops.im2col import RowTaps, col2im, conv_out_size, im2col, sides, width_im2col


# ---- arguments --------------------------------------------------------------------------
def ntuple(value, n, name, op):
    """An int or n ints as an n-tuple; a clear error naming `op` otherwise."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (int(value),) * n
    values = tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(values) != n or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                   for v in values):
        what = "an int" if n == 1 else f"an int or {'a pair' if n == 2 else n} of ints"
        raise ValueError(f"{op}: {name} must be {what}, got {value!r}")
    return tuple(int(v) for v in values)


def pair(value, name, op):
    """An int or a pair of ints as a (height, width) tuple."""
    return ntuple(value, 2, name, op)


def padding_sides(op, padding, kernel, stride, dilation):
    """PyTorch's padding argument -> ((lo, hi), ...) per spatial axis.

    An int or tuple pads both sides alike; 'valid' is no padding; 'same' keeps the input
    size (stride 1 only, as in PyTorch): d (K - 1) in all, and when that is odd the extra
    one goes to the end (bottom / right), as PyTorch splits it."""
    n = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * n
        if padding != "same":
            raise ValueError(f"{op}: padding must be an int, a tuple of ints, 'valid' or "
                             f"'same', got {padding!r}")
        if any(s != 1 for s in stride):
            raise ValueError(f"{op}: padding='same' is not supported for strided "
                             f"convolutions (stride {stride}), as in PyTorch")
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in totals)
    padding = ntuple(padding, n, "padding", op)
    if min(padding) < 0:
        raise ValueError(f"{op}: padding must be non-negative, got {padding}")
    return tuple((p, p) for p in padding)


def check_conv_args(op, x, weight, bias, stride, padding, dilation, groups,
                    output_padding=None):
    """Validate a conv / conv_transpose call with n = weight.ndim - 2 spatial axes and a
    batched input x [N, C, *spatial]; returns stride, padding ((lo, hi) per axis),
    dilation (and output_padding) as n-tuples. Errors name the op and the shapes."""
    n = x.ndim - 2
    transposed = output_padding is not None
    if weight.ndim != n + 2:
        raise ValueError(f"{op}: expected a {n + 2}-D weight, got shape {weight.shape}")
    K = tuple(weight.shape[2:])
    stride = ntuple(stride, n, "stride", op)
    dilation = ntuple(dilation, n, "dilation", op)
    if min(stride) < 1:
        raise ValueError(f"{op}: stride must be positive, got {stride}")
    if min(dilation) < 1:
        raise ValueError(f"{op}: dilation must be positive, got {dilation}")
    if not isinstance(groups, numbers.Integral) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    if transposed and isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or a tuple of ints, got {padding!r} "
                         f"(PyTorch's transposed convolutions take no padding strings)")
    padding = padding_sides(op, padding, K, stride, dilation)
    # which weight axis holds the input channels, and how many output channels there are
    layout = f"[C_in, C_out/groups, {', '.join('K' * n)}]" if transposed else (
        f"[C_out, C_in/groups, {', '.join('K' * n)}]")
    c_in = weight.shape[0] if transposed else weight.shape[1] * groups
    c_out = weight.shape[1] * groups if transposed else weight.shape[0]
    if weight.shape[0] % groups:
        raise ValueError(f"{op}: weight {weight.shape} ({layout}) has {weight.shape[0]} "
                         f"{'input' if transposed else 'output'} channels, not divisible by "
                         f"groups={groups}")
    if x.shape[1] != c_in:
        raise ValueError(f"{op}: input {x.shape} has {x.shape[1]} channels, but the weight "
                         f"{weight.shape} ({layout}, groups={groups}) expects {c_in}")
    if bias is not None and bias.shape != (c_out,):
        raise ValueError(f"{op}: bias must have shape ({c_out},) for the weight "
                         f"{weight.shape}, got {bias.shape}")
    if not transposed:
        padded = tuple(m + lo + hi for m, (lo, hi) in zip(x.shape[2:], padding))
        span = tuple(d * (k - 1) + 1 for k, d in zip(K, dilation))
        if any(p < s for p, s in zip(padded, span)):
            dilated = f" (dilated to {span})" if span != K else ""
            raise ValueError(f"{op}: kernel {K}{dilated} is larger than the padded input "
                             f"{padded} (input {x.shape}, padding {padding})")
        return stride, padding, dilation
    output_padding = ntuple(output_padding, n, "output_padding", op)
    if not all(0 <= o < max(s, d) for o, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(f"{op}: output_padding {output_padding} must be non-negative and "
                         f"smaller than the stride {stride} or the dilation {dilation}")
    out = transposed_size(x.shape[2:], K, stride, padding, dilation, output_padding)
    if min(out) < 1:
        raise ValueError(f"{op}: input {x.shape} with kernel {K}, stride {stride} and "
                         f"padding {padding} gives an empty output {tuple(out)}")
    return stride, padding, dilation, output_padding


def transposed_size(size, kernel, stride, padding, dilation, output_padding):
    """A transposed convolution's output size (PyTorch's formula), per axis:
    (n - 1) S - P_lo - P_hi + d (K - 1) + output_padding + 1."""
    return tuple((m - 1) * s - lo - hi + d * (k - 1) + o + 1 for m, k, s, (lo, hi), d, o in
                 zip(size, kernel, stride, padding, dilation, output_padding))


# ---- the two directions of one convolution ----------------------------------------------
def grouped(matrix, groups):
    """[A, ...] -> [G, A/G, rest]: the G independent blocks of a weight or of the columns."""
    return matrix.reshape(groups, matrix.shape[0] // groups, -1)


def conv_columns(rows, kernel, stride, padding, out_size, dilation, groups, out_channels):
    """What a convolution's products read from its input rows [C, H, W, N]: im2col's
    columns [C*K_h*K_w, L], or the same numbers K_h times smaller as im2col.RowTaps
    (`conv_output` and `weight_grad` take either) where that is faster: on the CPU, for
    one group, stride 1 in height and K_h > 1 (so kernel row a's columns are one slice),
    when the stacked product's inner size C*K_w is 32 or more, its extra padded rows
    (H_p - H_out) add at most 1/8 to it, and its columns and output together, (C*K_w +
    K_h*C_out) rows of H_p*W_out*N, are no larger than im2col's C*K_h*K_w rows of
    H_out*W_out*N (so peak memory is no higher; a 16 -> 512 channel layer keeps im2col).
    The forward then multiplies the kernel rows
    stacked, [K_h*C_out, C*K_w], a better-shaped product for OpenBLAS than [C_out,
    C*K_h*K_w] when C_out is small: forward + backward of the residual net's 3x3 layers,
    alternating in one process (2-core EPYC, AVX2), 18.7 -> 16.5 ms at 16 channels 32x32,
    14.6 -> 11.5 at 32 channels 16x16; it lost at 64 channels 8x8 (9.2 -> 10.1: the two
    padded rows are 1/4 more work) and on the 3-channel stem (3.2 -> 4.5: inner size 9)."""
    C, H = rows.shape[:2]
    Hp, Ho = H + sum(sides(padding)[0]), out_size[0]
    Kh, Kw = kernel
    if (get_array_module(rows) is np and groups == 1 and stride[0] == 1 and Kh > 1
            and C * Kw >= 32 and 8 * (Hp - Ho) <= Ho
            and (C * Kw + Kh * out_channels) * Hp <= C * Kh * Kw * Ho):
        return width_im2col(rows, kernel, stride, padding, out_size, dilation)
    return im2col(rows, kernel, stride, padding, out_size, dilation)


def conv_output(weight, cols, N, out_size, groups, bias=None):
    """weight [A, B, K_h, K_w] as [G, A/G, B*K_h*K_w] @ cols [G, B*K_h*K_w, L] (+ bias [A])
    -> images [N, A, H_out, W_out], L = H_out*W_out*N. conv2d's forward, and
    conv_transpose2d's input gradient (with A = C_in)."""
    A = weight.shape[0]
    if isinstance(cols, RowTaps):
        out = row_taps_product(weight, cols)
    else:
        out = matmul(grouped(weight, groups), grouped(cols, groups)).reshape(A, -1)  # [A, L]
    if bias is not None:
        out += bias[:, None]
    return from_batch_last(out.reshape(A, *out_size, N))


def row_taps_product(weight, taps):
    """weight [A, B, K_h, K_w] as [A, B*K_h*K_w] @ the full im2col, from RowTaps:
    Σ_a weight[:, :, a] @ taps.tap(a), as one product of the kernel rows stacked,
    [K_h*A, B*K_w] @ taps.cols -> [K_h, A, H_p*W_out*N], then kernel row a's output read
    from its span of padded rows and the K_h parts summed -> [A, H_out*W_out*N]."""
    A, B, Kh, Kw = weight.shape
    stacked = weight.transpose(2, 0, 1, 3).reshape(Kh * A, B * Kw)
    parts = matmul(stacked, taps.cols).reshape(Kh, A, -1)
    out = parts[0][:, taps.span(0)] + parts[1][:, taps.span(1)]
    for a in range(2, Kh):
        out += parts[a][:, taps.span(a)]
    return out


def conv_input_grad(grad_rows, grad_rows_size, weight, x_shape, stride, padding, dilation,
                    groups):
    """The gradient of conv2d with respect to its input x [N, G*B, H, W], given the output
    gradient as rows [A, H_out*W_out*N] of an (H_out, W_out) image. conv2d's input
    gradient, and conv_transpose2d's forward (with A = C_in, and (H_out, W_out) its input
    size). Two ways to the same numbers: for a stride-1 layer whose gradient columns are
    no larger than weightᵀ @ grad (A <= G*B: peak memory no higher), a convolution of the
    gradient (input_grad_as_conv: a gather and one product, 1.2-1.3x faster on the
    residual net's 3x3 layers, docs/cpu_speed.md); otherwise col2im (input_grad_by_col2im)."""
    back = full_padding(grad_rows_size, x_shape[2:], weight.shape[2:], stride, padding,
                        dilation)
    if back is not None and weight.shape[0] <= x_shape[1]:
        return input_grad_as_conv(grad_rows, grad_rows_size, weight, x_shape, back,
                                  dilation, groups)
    return input_grad_by_col2im(grad_rows, grad_rows_size, weight, x_shape, stride, padding,
                                dilation, groups)


def input_grad_by_col2im(grad_rows, grad_rows_size, weight, x_shape, stride, padding,
                         dilation, groups):
    """conv_input_grad as weightᵀ @ grad per group, then col2im (any stride)."""
    N, C, H, W = x_shape
    wT = grouped(weight, groups).transpose(0, 2, 1)                  # [G, B*K_h*K_w, A/G]
    gcols = matmul(wT, grouped(grad_rows, groups)).reshape(-1, grad_rows.shape[1])
    rows = col2im(gcols, (C, H, W, N), weight.shape[2:], stride, padding, dilation,
                  grad_rows_size)
    return from_batch_last(rows)                                     # [N, C, H, W]


def input_grad_as_conv(grad_rows, grad_rows_size, weight, x_shape, back, dilation, groups):
    """conv_input_grad of a stride-1 layer as a convolution: the output gradient, padded by
    `back` (full_padding), correlated with the flipped, transposed kernel. im2col's gather
    and one product replace weightᵀ @ grad's K_h*K_w-times larger result and col2im's
    strided adds."""
    N, _, H, W = x_shape
    grad_image = grad_rows.reshape(-1, *grad_rows_size, N)            # [A, H_out, W_out, N]
    cols = conv_columns(grad_image, weight.shape[2:], (1, 1), back, (H, W), dilation, groups,
                        x_shape[1])
    return conv_output(flipped_transposed(weight, groups), cols, N, (H, W), groups)


def full_padding(grad_size, x_size, kernel, stride, padding, dilation):
    """For a stride-1 convolution, the padding per side of its output gradient under which
    the input gradient is a plain convolution of it (None when strided, or when the
    layer's padding exceeds d (K - 1) on a side, which that would need to crop).

    x[y] meets grad[i] through kernel tap a when y = i + d a - P_top, so gx[y] =
    Σ_a grad[y + P_top - d a] w[a] = Σ_a' pad(grad)[y + d a'] w[K - 1 - a'] with
    a' = K - 1 - a and d (K - 1) - P_top zeros on top: the flipped kernel over the padded
    gradient (the "full" correlation of backprop; Dumoulin & Visin 2016, section 2.1)."""
    if any(s != 1 for s in stride):
        return None
    back = []
    for n_grad, n_x, k, d, (lo, _) in zip(grad_size, x_size, kernel, dilation, padding):
        top = d * (k - 1) - lo
        bottom = n_x + d * (k - 1) - n_grad - top        # so that n_x windows fit exactly
        if top < 0 or bottom < 0:
            return None
        back.append((top, bottom))
    return tuple(back)


def flipped_transposed(weight, groups):
    """weight [A, B, K_h, K_w] (A = G groups of A/G) -> [G*B, A/G, K_h, K_w], each group's
    channel axes swapped and the kernel turned 180°: the weight of full_padding's
    convolution, which maps the A output channels back to the G*B input ones."""
    A, B, Kh, Kw = weight.shape
    w = weight.reshape(groups, A // groups, B, Kh, Kw)[:, :, :, ::-1, ::-1]
    return w.transpose(0, 2, 1, 3, 4).reshape(groups * B, A // groups, Kh, Kw)


def weight_grad(a_rows, cols, weight_shape, groups):
    """a_rows [A, L] @ colsᵀ [L, B*K_h*K_w] per group -> the weight gradient [A, B, K_h, K_w].

    Computed as (cols @ a_rowsᵀ)ᵀ, the same product, when the columns have more rows than
    a_rows (B*K_h*K_w > A/G): OpenBLAS is 1.1-1.5x faster with the longer side on the left
    here (a residual net's [16, 65536] @ [65536, 144]: 5.6 -> 3.8 ms; 2-core EPYC, AVX-512),
    and slower the other way round (a [32, 16384] @ [16384, 16] shortcut: 0.27 -> 0.35).
    From RowTaps (groups 1), one such product per kernel row a, with taps.tap(a)."""
    if isinstance(cols, RowTaps):
        A, B, Kh, Kw = weight_shape
        grad = get_array_module(a_rows).empty(weight_shape, a_rows.dtype)
        for a in range(Kh):
            grad[:, :, a] = weight_grad(a_rows, cols.tap(a), (A, B, Kw), 1)
        return grad
    ga, gc = grouped(a_rows, groups), grouped(cols, groups)
    if gc.shape[1] > ga.shape[1]:
        product = matmul_long_inner(gc, ga.transpose(0, 2, 1)).transpose(0, 2, 1)
    else:
        product = matmul_long_inner(ga, gc.transpose(0, 2, 1))
    return product.reshape(weight_shape)


# ---- the Functions ----------------------------------------------------------------------
class Conv2dFunction(Function):
    """out[n, o] = Σ_{c in o's group} weight[o, c] ⋆ x[n, c] + bias[o] (cross-correlation,
    as in PyTorch). x [N, C_in, H, W], weight [C_out, C_in/G, K_h, K_w], bias [C_out] ->
    [N, C_out, H_out, W_out]. stride, dilation: (h, w); padding ((top, bottom), (left,
    right)); `check_conv_args` has validated everything."""

    def forward(self, x, weight, bias=None, stride=(1, 1), padding=((0, 0), (0, 0)),
                dilation=(1, 1), groups=1):
        K = weight.shape[2:]
        out_size = conv_out_size(x.shape[2:], K, stride, padding, dilation)
        self.cols = conv_columns(to_batch_last(x), K, stride, padding, out_size, dilation,
                                 groups, weight.shape[0])
        out = conv_output(weight, self.cols, x.shape[0], out_size, groups, bias)
        self.weight, self.x_shape, self.has_bias = weight, x.shape, bias is not None
        self.geometry = stride, padding, dilation, groups
        return out                                                # [N, C_out, H_out, W_out]

    def backward(self, grad):
        g = to_batch_last(grad).reshape(grad.shape[1], -1)        # [C_out, H_out*W_out*N]
        stride, padding, dilation, groups = self.geometry
        gx = gw = None
        if self.needs_input_grad[0]:
            gx = conv_input_grad(g, grad.shape[2:], self.weight, self.x_shape, stride,
                                 padding, dilation, groups)
        if self.needs_input_grad[1]:
            gw = weight_grad(g, self.cols, self.weight.shape, groups)
        if not self.has_bias:
            return gx, gw
        return gx, gw, row_sums(g)[:, 0]


class ConvTranspose2dFunction(Function):
    """The transpose (adjoint) of Conv2dFunction: conv2d's input gradient used as a layer,
    which upsamples by the stride. x [N, C_in, H, W], weight [C_in, C_out/G, K_h, K_w]
    (PyTorch's layout), bias [C_out] -> [N, C_out, H_out, W_out] with H_out =
    (H - 1) S - P_top - P_bottom + d (K_h - 1) + output_padding + 1."""

    def forward(self, x, weight, bias=None, stride=(1, 1), padding=((0, 0), (0, 0)),
                output_padding=(0, 0), dilation=(1, 1), groups=1):
        N, _, H, W = x.shape
        K = weight.shape[2:]
        out_shape = (N, weight.shape[1] * groups) + transposed_size(
            (H, W), K, stride, padding, dilation, output_padding)
        self.x_rows = to_batch_last(x).reshape(x.shape[1], -1)    # [C_in, H*W*N]
        out = conv_input_grad(self.x_rows, (H, W), weight, out_shape, stride, padding,
                              dilation, groups)
        if bias is not None:
            out += bias[:, None, None]
        self.weight, self.x_shape, self.has_bias = weight, x.shape, bias is not None
        self.geometry = stride, padding, dilation, groups
        return out                                                # [N, C_out, H_out, W_out]

    def backward(self, grad):
        N, _, H, W = self.x_shape
        stride, padding, dilation, groups = self.geometry
        grows = to_batch_last(grad)                               # [C_out, H_out, W_out, N]
        gx = gw = None
        if self.needs_input_grad[0] or self.needs_input_grad[1]:
            gcols = conv_columns(grows, self.weight.shape[2:], stride, padding, (H, W),
                                 dilation, groups, self.weight.shape[0])
            if self.needs_input_grad[0]:   # conv2d of the output gradient
                gx = conv_output(self.weight, gcols, N, (H, W), groups)
            if self.needs_input_grad[1]:   # [C_in, H*W*N] @ [H*W*N, C_out/G*K*K] per group
                gw = weight_grad(self.x_rows, gcols, self.weight.shape, groups)
        if not self.has_bias:
            return gx, gw
        return gx, gw, row_sums(grows.reshape(grows.shape[0], -1))[:, 0]

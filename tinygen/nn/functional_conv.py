"""F.conv1d, conv2d, conv_transpose1d, conv_transpose2d: PyTorch's signatures and defaults.

Each validates its arguments (ops/conv.py: `check_conv_args`, every error naming the op)
and calls the one 2-D Function of ops/conv.py. A 1-D convolution is the 2-D one on a
height-1 view: x [N, C, L] -> [N, C, 1, L], weight [.., K] -> [.., 1, K]; both reshapes
are views, so it costs nothing. An unbatched input ([C, L] or [C, H, W]) gets a batch of
one, as PyTorch's does.
"""

from tinygen import ops
from tinygen.ops.conv import check_conv_args


def _conv(op, n, x, weight, bias, stride, padding, dilation, groups, output_padding=None):
    """The shared body: n = 1 or 2 spatial axes; output_padding given = transposed."""
    if x.ndim not in (n + 1, n + 2):
        raise ValueError(f"{op}: expected a {n + 1}-D (unbatched) or {n + 2}-D (batched) "
                         f"input [N, C, {', '.join('HW'[2 - n:])}], got shape {x.shape}")
    unbatched = x.ndim == n + 1
    if unbatched:
        x = x.reshape(1, *x.shape)
    transposed = output_padding is not None
    stride, padding, dilation, *output_padding = check_conv_args(
        op, x, weight, bias, stride, padding, dilation, groups, output_padding)
    if n == 1:   # the 2-D convolution of a height-1 image with a height-1 kernel
        x = x.reshape(x.shape[0], x.shape[1], 1, x.shape[2])
        weight = weight.reshape(weight.shape[0], weight.shape[1], 1, weight.shape[2])
        stride, padding, dilation = (1, *stride), ((0, 0), *padding), (1, *dilation)
        output_padding = [(0, *o) for o in output_padding]
    params = (weight,) if bias is None else (weight, bias)
    if transposed:
        out = ops.ConvTranspose2dFunction.apply(
            x, *params, stride=stride, padding=padding, output_padding=output_padding[0],
            dilation=dilation, groups=groups)
    else:
        out = ops.Conv2dFunction.apply(x, *params, stride=stride, padding=padding,
                                       dilation=dilation, groups=groups)
    if n == 1:
        out = out.reshape(out.shape[0], out.shape[1], out.shape[3])
    return out.reshape(*out.shape[1:]) if unbatched else out


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, as in PyTorch): input [N, C_in, H, W] (or
    [C_in, H, W]), weight [C_out, C_in/groups, K_h, K_w], bias [C_out] -> [N, C_out, H_out,
    W_out], H_out = (H + 2 P - d (K_h - 1) - 1) // S + 1. stride, dilation: int or (h, w);
    padding: int, (h, w), 'valid' or 'same' (stride 1; an odd total puts the extra row at
    the bottom, the extra column at the right, as PyTorch does)."""
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution: input [N, C_in, L] (or [C_in, L]), weight [C_out, C_in/groups, K],
    bias [C_out] -> [N, C_out, L_out]. Options as conv2d's, one int each."""
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    """Transposed convolution (conv2d's gradient with respect to its input, used as an
    upsampling layer): input [N, C_in, H, W], weight [C_in, C_out/groups, K_h, K_w] ->
    [N, C_out, (H - 1) S - 2 P + d (K_h - 1) + output_padding + 1, ...]. PyTorch's argument
    order: output_padding, groups, then dilation."""
    return _conv("conv_transpose2d", 2, input, weight, bias, stride, padding, dilation, groups,
                 output_padding)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    """Transposed 1-D convolution: input [N, C_in, L], weight [C_in, C_out/groups, K] ->
    [N, C_out, (L - 1) S - 2 P + d (K - 1) + output_padding + 1]."""
    return _conv("conv_transpose1d", 1, input, weight, bias, stride, padding, dilation, groups,
                 output_padding)

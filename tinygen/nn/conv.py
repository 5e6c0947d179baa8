"""Convolution layers: Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d (PyTorch's names,
arguments, defaults, parameter layout and initialisation), thin Modules over
nn/functional_conv.py.

Parameters as PyTorch lays them out, so state_dicts load 1:1 both ways:
  Conv:           weight [out_channels, in_channels / groups, *kernel_size]
  ConvTranspose:  weight [in_channels, out_channels / groups, *kernel_size]
  bias [out_channels] (bias=False: none).
Initialisation as PyTorch's reset_parameters: weight kaiming_uniform_(a=√5), i.e.
U(±1/√fan_in), and bias U(±1/√fan_in), with fan_in = weight.shape[1] * prod(kernel_size)
computed from the weight as PyTorch does (so it counts in_channels / groups for a Conv and
out_channels / groups for a ConvTranspose).

padding_mode 'reflect', 'replicate' or 'circular' pads the input with F.pad first, then
convolves without padding (PyTorch's _conv_forward); 'zeros' lets the convolution pad.
Transposed convolutions take 'zeros' only, and no padding strings, as in PyTorch.
"""

import math

import numpy as np

from tinygen.backend import module_for
from tinygen.nn import functional as F
from tinygen.nn import init
from tinygen.nn.module import Module, Parameter
from tinygen.ops.conv import ntuple, padding_sides

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    """What the four layers share: argument checks (errors name the layer), parameters,
    init, the input check and the repr. n spatial axes; transposed or not."""

    n, transposed = 2, False

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation,
                 groups, bias, padding_mode, output_padding=0, device="cpu"):
        name, n = type(self).__name__, self.n
        for what, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: {what} must be a positive int, got {value!r}")
        if not isinstance(groups, int) or groups < 1:
            raise ValueError(f"{name}: groups must be a positive int, got {groups!r}")
        for what, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if value % groups:
                raise ValueError(f"{name}: {what} ({value}) must be divisible by groups "
                                 f"({groups})")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {PADDING_MODES}, got "
                             f"{padding_mode!r}")
        if self.transposed and padding_mode != "zeros":
            raise ValueError(f"{name}: only 'zeros' padding_mode is supported (as in "
                             f"PyTorch), got {padding_mode!r}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = ntuple(kernel_size, n, "kernel_size", name)
        self.stride = ntuple(stride, n, "stride", name)
        self.dilation = ntuple(dilation, n, "dilation", name)
        self.output_padding = ntuple(output_padding, n, "output_padding", name)
        if isinstance(padding, str) and self.transposed:
            raise ValueError(f"{name}: padding must be an int or a tuple of ints, got "
                             f"{padding!r} (PyTorch's transposed convolutions take no strings)")
        # 'same' with a stride, bad strings, negative sizes: refused here, at construction
        self._sides = padding_sides(name, padding, self.kernel_size, self.stride,
                                    self.dilation)
        self.padding = padding if isinstance(padding, str) else tuple(lo for lo, _ in self._sides)
        self.padding_mode = padding_mode
        shape = ((in_channels, out_channels // groups) if self.transposed else
                 (out_channels, in_channels // groups)) + self.kernel_size
        self.weight = init.kaiming_uniform_(_zeros(shape, device), a=math.sqrt(5))
        self.bias = None
        if bias:
            bound = 1 / math.sqrt(shape[1] * math.prod(self.kernel_size))
            self.bias = init.uniform_(_zeros((out_channels,), device), -bound, bound)

    def check_input(self, x):
        """The input's rank and channels, before any work; the error names the layer."""
        n = self.n
        if x.ndim not in (n + 1, n + 2) or x.shape[x.ndim - n - 1] != self.in_channels:
            axes = ", ".join("HW"[2 - n:])
            raise ValueError(f"{type(self).__name__}(in_channels={self.in_channels}): expected "
                             f"an input [N, {self.in_channels}, {axes}] (or unbatched "
                             f"[{self.in_channels}, {axes}]), got shape {x.shape}")

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * self.n:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self.n:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * self.n:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


def _zeros(shape, device):
    return Parameter(module_for(device).zeros(shape, dtype=np.float32))


class _Conv(_ConvNd):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", device="cpu"):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, device=device)

    def forward(self, x):
        self.check_input(x)
        conv = F.conv1d if self.n == 1 else F.conv2d
        padding = self.padding
        if self.padding_mode != "zeros":   # F.pad wants (last lo, last hi, 2nd last lo, ...)
            pads = tuple(p for side in reversed(self._sides) for p in side)
            x, padding = F.pad(x, pads, mode=self.padding_mode), 0
        return conv(x, self.weight, self.bias, self.stride, padding, self.dilation,
                    self.groups)


class _ConvTranspose(_ConvNd):
    transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 device="cpu"):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, output_padding, device)

    def forward(self, x, output_size=None):
        """output_size (the spatial size wanted, or the whole shape): picks output_padding
        as PyTorch does, for a stride that maps several sizes onto one."""
        self.check_input(x)
        output_padding = self.output_padding
        if output_size is not None:
            output_padding = self._output_padding_for(x, tuple(output_size)[-self.n:])
        conv = F.conv_transpose1d if self.n == 1 else F.conv_transpose2d
        return conv(x, self.weight, self.bias, self.stride, self.padding, output_padding,
                    self.groups, self.dilation)

    def _output_padding_for(self, x, size):
        smallest = [(m - 1) * s - 2 * p + d * (k - 1) + 1 for m, s, p, d, k in zip(
            x.shape[-self.n:], self.stride, self.padding, self.dilation, self.kernel_size)]
        pads = tuple(want - low for want, low in zip(size, smallest))
        if not all(0 <= o < max(s, d) for o, s, d in zip(pads, self.stride, self.dilation)):
            raise ValueError(f"{type(self).__name__}: output_size {size} is not reachable from "
                             f"the input {x.shape}: it needs output_padding {pads}, each in "
                             f"[0, max(stride, dilation))")
        return pads


class Conv1d(_Conv):
    """[N, in_channels, L] -> [N, out_channels, L_out],
    L_out = (L + 2 padding - dilation (kernel_size - 1) - 1) // stride + 1."""

    n = 1


class Conv2d(_Conv):
    """[N, in_channels, H, W] -> [N, out_channels, H_out, W_out],
    H_out = (H + 2 padding - dilation (K_h - 1) - 1) // stride + 1 (and W_out likewise)."""

    n = 2


class ConvTranspose1d(_ConvTranspose):
    """[N, in_channels, L] -> [N, out_channels, (L - 1) stride - 2 padding +
    dilation (kernel_size - 1) + output_padding + 1]."""

    n = 1


class ConvTranspose2d(_ConvTranspose):
    """[N, in_channels, H, W] -> [N, out_channels, (H - 1) stride - 2 padding +
    dilation (K_h - 1) + output_padding + 1, ...]. With kernel 4, stride 2, padding 1 it
    doubles H and W: DCGAN's upsampling step."""

    n = 2

"""Tensor methods that convert: to NumPy and Python values, between devices and dtypes.

Mixed into Tensor (tensor.py). A cast to a floating dtype and a move between devices are
differentiable (ops.Cast, ops.ToDevice); a cast to an integer or bool dtype carries no
gradient, as in PyTorch.
"""

import numpy as np

from tinygen import ops
from tinygen.backend import check_device, device_of, to_numpy


class ConversionMethods:
    """Mixed into Tensor (tensor.py)."""

    __slots__ = ()

    def numpy(self):
        """The values as a NumPy array (copied from the GPU if needed; no graph)."""
        return to_numpy(self.data)

    def __array__(self, dtype=None, copy=None):
        """`np.asarray(t)`: a CPU tensor's own array (no copy, no graph), as PyTorch's
        Tensor.__array__. A CUDA tensor refuses, as in PyTorch: the copy to the host is
        made visible with `t.numpy()` or `t.cpu()`."""
        if device_of(self.data) != "cpu":
            raise TypeError(f"can't convert a {self.device} tensor to a NumPy array "
                            "implicitly; use .numpy() or .cpu() to copy it to host memory")
        data = np.asarray(self.data)
        if dtype is not None and np.dtype(dtype) != data.dtype:
            if copy is False:
                raise ValueError(f"__array__: a {data.dtype} tensor cannot become "
                                 f"{np.dtype(dtype)} without a copy (copy=False)")
            return data.astype(dtype)
        return data.copy() if copy else data

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item: only one-element tensors convert to a Python number, "
                             f"this one has shape {self.shape}")
        return to_numpy(self.data.reshape(())).item()  # to_numpy: pending index checks

    def __float__(self):
        """`float(t)` for a one-element tensor, as in PyTorch (its value: a host sync on a GPU)."""
        return float(self.item())

    def __int__(self):
        """`int(t)` for a one-element tensor (a float one truncates, as int(2.7) does)."""
        return int(self.item())

    def tolist(self):
        return to_numpy(self.data).tolist()

    def to(self, device=None, dtype=None):
        """Move to "cpu"/"cuda" and/or cast; a differentiable copy (or self if nothing changes).
        As in PyTorch the first argument may be a dtype (`x.to(tg.float64)`) or a tensor
        whose dtype and device to take."""
        if isinstance(device, ConversionMethods):  # a Tensor
            device, dtype = device.device, device.dtype
        elif device is not None and not isinstance(device, str):
            device, dtype = None, device
        out = self
        if dtype is not None and np.dtype(dtype) != self.dtype:
            if np.dtype(dtype).kind not in "fc":  # integers carry no gradient
                out = self._make(self.data.astype(dtype), None)
            else:
                out = ops.Cast.apply(out, dtype=np.dtype(dtype))
        if device is not None and check_device(device) != self.device:
            out = ops.ToDevice.apply(out, device=device)
        return out

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def float(self):
        return self.to(dtype=np.float32)

    def double(self):
        return self.to(dtype=np.float64)

    def long(self):
        return self.to(dtype=np.int64)

    def int(self):
        return self.to(dtype=np.int32)

    def bool(self):
        return self.to(dtype=np.bool_)

    def type_as(self, other):
        return self.to(dtype=other.dtype)

    def contiguous(self):
        """A no-op view, as for an already contiguous PyTorch tensor (ops copy as needed)."""
        return self

    def is_floating_point(self):
        return self.data.dtype.kind == "f"

    astype = to

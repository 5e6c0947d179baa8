"""Ways to make tensors: from data, filled with a constant, ranges, random numbers."""

import numpy as np

from tinygen.backend import module_for
from tinygen.random import generator
from tinygen.tensor import Tensor

float32, float64, float16 = np.float32, np.float64, np.float16
int32, int64, bool_ = np.int32, np.int64, np.bool_


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor from a list, number or array, holding its own copy (as torch.tensor
    does: training it never changes the caller's array). Python floats become float32.
    device=None keeps an array where it is (a CuPy array stays on the GPU); lists go to "cpu"."""
    t = Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)
    if t.data is data or getattr(t.data, "base", None) is not None:
        t.data = t.data.copy()
    return t


def _shape(shape):
    return tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], int) else shape


def _filled(shape, value, dtype, device, requires_grad):
    xp = module_for(device)
    return Tensor(xp.full(_shape(shape), value, dtype=dtype), requires_grad=requires_grad)


def zeros(*shape, dtype=float32, device="cpu", requires_grad=False):
    return _filled(shape, 0, dtype, device, requires_grad)


def ones(*shape, dtype=float32, device="cpu", requires_grad=False):
    return _filled(shape, 1, dtype, device, requires_grad)


def full(shape, fill_value, dtype=float32, device="cpu", requires_grad=False):
    return _filled((shape,) if isinstance(shape, int) else tuple(shape), fill_value, dtype,
                   device, requires_grad)


def zeros_like(t, dtype=None, requires_grad=False):
    return zeros(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return ones(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def arange(start, stop=None, step=1, dtype=None, device="cpu"):
    """Like np.arange: integers give int64, a float anywhere gives float32."""
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        is_int = all(isinstance(v, int) for v in (start, stop, step))
        dtype = int64 if is_int else float32
    return Tensor(module_for(device).arange(start, stop, step, dtype=dtype))


def randn(*shape, dtype=float32, device="cpu", requires_grad=False):
    """Standard normal samples from the global generator (see tg.manual_seed)."""
    data = generator(device).standard_normal(_shape(shape), dtype=dtype)
    return Tensor(data, requires_grad=requires_grad)


def rand(*shape, dtype=float32, device="cpu", requires_grad=False):
    """Uniform samples in [0, 1) from the global generator."""
    data = generator(device).random(_shape(shape), dtype=dtype)
    return Tensor(data, requires_grad=requires_grad)


def randint(low, high, shape, device="cpu"):
    return Tensor(generator(device).integers(low, high, size=shape, dtype=int64))

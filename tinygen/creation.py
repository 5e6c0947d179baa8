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


def as_tensor(x, like=None, dtype=None, device=None):
    """x (a Tensor, array, list or number) as a Tensor, copying only when it must, as
    torch.as_tensor: a Tensor or array already of the asked dtype and device is used as it
    is (the Tensor itself, or a Tensor sharing the array's memory). `like=t` takes t's
    device and, for floating-point x, t's float dtype (so a float64 NumPy constant does not
    turn float32 math into float64); explicit dtype and device win over like's. Integer
    and boolean x keep their dtype (token ids stay int64)."""
    if like is not None:
        device = like.device if device is None else device
        floating = np.issubdtype(like.dtype, np.floating)
        if dtype is None and floating and _is_float(x):
            dtype = like.dtype
    if isinstance(x, Tensor):
        if (dtype is None or x.dtype == dtype) and (device is None or x.device == device):
            return x
        return x.to(device=device, dtype=dtype)
    return Tensor(x, dtype=dtype, device=device)


def _is_float(x):
    if hasattr(x, "dtype"):
        return np.issubdtype(x.dtype, np.floating)
    return np.issubdtype(np.asarray(x).dtype, np.floating)


def _shape(shape):
    return tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], int) else shape


def _filled(shape, value, dtype, device, requires_grad):
    xp = module_for(device)
    return Tensor(xp.full(_shape(shape), value, dtype=dtype), requires_grad=requires_grad)


def zeros(*shape, dtype=float32, device="cpu", requires_grad=False):
    return _filled(shape, 0, dtype, device, requires_grad)


def ones(*shape, dtype=float32, device="cpu", requires_grad=False):
    return _filled(shape, 1, dtype, device, requires_grad)


def full(shape, fill_value, dtype=None, device="cpu", requires_grad=False):
    """A tensor filled with `fill_value`; without a dtype, PyTorch's choice from the value:
    bool -> bool, int -> int64, float -> float32."""
    if dtype is None:
        dtype = (bool_ if isinstance(fill_value, bool) else
                 int64 if isinstance(fill_value, int) else float32)
    return _filled((shape,) if isinstance(shape, int) else tuple(shape), fill_value, dtype,
                   device, requires_grad)


def empty(*shape, dtype=float32, device="cpu", requires_grad=False):
    """Zeros (PyTorch leaves the memory uninitialised; zeros are as fast and reproducible)."""
    return zeros(*shape, dtype=dtype, device=device, requires_grad=requires_grad)


def eye(n, m=None, dtype=float32, device="cpu", requires_grad=False):
    t = Tensor(module_for(device).eye(n, n if m is None else m, dtype=dtype))
    return t.requires_grad_(requires_grad)


def linspace(start, end, steps, dtype=float32, device="cpu", requires_grad=False):
    """`steps` evenly spaced values from start to end, both included."""
    t = Tensor(module_for(device).linspace(start, end, steps, dtype=dtype))
    return t.requires_grad_(requires_grad)


def zeros_like(t, dtype=None, requires_grad=False):
    return zeros(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return ones(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def full_like(t, fill_value, dtype=None, requires_grad=False):
    return full(t.shape, fill_value, dtype=dtype or t.dtype, device=t.device,
                requires_grad=requires_grad)


def empty_like(t, dtype=None, requires_grad=False):
    return zeros_like(t, dtype=dtype, requires_grad=requires_grad)


def randn_like(t, dtype=None, requires_grad=False):
    return randn(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def rand_like(t, dtype=None, requires_grad=False):
    return rand(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


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


def randint(low, high=None, size=None, device="cpu", dtype=int64):
    """Integers in [low, high) as torch.randint: randint(high, size) or randint(low, high,
    size)."""
    if size is None:  # randint(high, size)
        low, high, size = 0, low, high
    size = (size,) if isinstance(size, int) else tuple(size)
    return Tensor(generator(device).integers(low, high, size=size, dtype=dtype))


def multinomial(probs, num_samples, replacement=False):
    """Indices drawn from each row of `probs` (non-negative weights, not necessarily summing
    to 1), as torch.multinomial: [n] -> [num_samples], [B, n] -> [B, num_samples]."""
    p = probs.numpy().astype(np.float64)
    rows = p.reshape(-1, p.shape[-1])
    if (rows < 0).any() or not np.isfinite(rows).all() or (rows.sum(-1) <= 0).any():
        raise ValueError("multinomial: probabilities must be finite, non-negative and not "
                         "all zero in a row")
    if not replacement and num_samples > (rows > 0).sum(-1).min():
        raise ValueError(f"multinomial: cannot draw {num_samples} samples without "
                         "replacement from fewer nonzero categories")
    u = generator("cpu").random((rows.shape[0], num_samples if replacement else 1))
    if replacement:  # inverse CDF per draw
        cdf = np.cumsum(rows / rows.sum(-1, keepdims=True), -1)
        out = (u[:, :, None] > cdf[:, None, :]).sum(-1).clip(max=rows.shape[-1] - 1)
    else:  # Gumbel top-k: keys log(u)/p, the largest num_samples (Efraimidis-Spirakis)
        keys = np.log(generator("cpu").random(rows.shape)) / np.where(rows > 0, rows, 1)
        keys = np.where(rows > 0, keys, -np.inf)
        out = np.argsort(-keys, -1, kind="stable")[:, :num_samples]
    out = out.reshape(p.shape[:-1] + (num_samples,)).astype(int64)
    return Tensor(out, device=probs.device)

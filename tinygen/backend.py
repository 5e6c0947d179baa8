"""Array backends: NumPy on "cpu", CuPy on "cuda".

This is the only file in tinygen that imports CuPy. Everything else asks
`get_array_module(array)` for the module that owns an array and writes one code path
against it (`xp.exp`, `xp.matmul`, ...), the way DeZero's `cuda.py` does.
"""

import ctypes
import os
import sys

import numpy as np

try:  # CuPy is optional: `pip install tinygen[gpu]`
    import cupy as cp
except Exception:  # noqa: BLE001  ImportError, or a CuPy build that cannot find its CUDA libraries
    cp = None

DEVICES = ("cpu", "cuda")


def cuda_available():
    """True when CuPy imports and sees at least one GPU."""
    if cp is None:
        return False
    try:
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001  a driver error means no usable GPU
        return False


def check_device(device):
    """Validate a device string; return it normalised ("cuda:0" -> "cuda")."""
    if not isinstance(device, str):
        raise TypeError(f"device must be a string 'cpu' or 'cuda', got {device!r}")
    name = device.split(":")[0]
    if name not in DEVICES:
        raise ValueError(f"unknown device {device!r}: expected one of {DEVICES}")
    if name == "cuda" and not cuda_available():
        why = "CuPy is not installed (pip install tinygen[gpu])" if cp is None else (
            "CuPy found no GPU")
        raise RuntimeError(f"device 'cuda' was asked for, but {why}")
    return name


def get_array_module(array):
    """numpy or cupy, whichever owns `array`."""
    if cp is not None and isinstance(array, cp.ndarray):
        return cp
    return np


def device_of(array):
    return "cuda" if get_array_module(array) is not np else "cpu"


def module_for(device):
    return cp if check_device(device) == "cuda" else np


def to_device(array, device):
    """Move an array to `device` ("cpu" or "cuda"); a no-op when it is already there."""
    device = check_device(device)
    if device == "cpu":
        return to_numpy(array)
    if isinstance(array, cp.ndarray):
        return array
    return cp.asarray(array)


def to_numpy(array):
    if cp is not None and isinstance(array, cp.ndarray):
        raise_pending_index_errors()
        return cp.asnumpy(array)
    return np.asarray(array)


def synchronize(device):
    """Wait for queued GPU work (for honest timings); nothing to wait for on the CPU."""
    if check_device(device) == "cuda":
        cp.cuda.Device().synchronize()


def default_rng(device, seed):
    """A random Generator on `device`: NumPy's PCG64 on the CPU, CuPy's on the GPU."""
    return module_for(device).random.default_rng(seed)


# ---- array-layout and BLAS tricks ---------------------------------------------------------
# Every trick of tinygen lives here, behind a name that says what it computes; the ops call
# them by that name, so they still read as their formula. Each docstring gives the plain
# NumPy expression and the reason for the trick: what it saves, measured with NumPy 2.4
# (OpenBLAS, float32) on a 2-core x86-64 machine. On CuPy the plain expression is used
# wherever the trick only works around NumPy. One more trick has its own module, because it
# is a small machine of its own: tinygen/blocked.py evaluates an op's elementwise formula in
# cache-sized row blocks on a persistent pool of threads (`in_row_blocks`), which GELU,
# layer norm, attention's softmax and Adam's update call (docs/cpu_speed.md: what each gains).

_constants = {}


def _constant_vector(xp, n, dtype, value):
    """A cached vector of n copies of `value`: the ones that make a sum a matrix product
    (row_sums, column_sums), positive_part's row of zeros."""
    key = (xp.__name__, n, dtype, value)
    if key not in _constants:
        _constants[key] = xp.full(n, value, dtype=dtype)
    return _constants[key]


def row_sums(x):
    """x.sum(axis=-1, keepdims=True), computed as one matrix-vector product (BLAS gemv).

    For rows of a few hundred numbers NumPy's reduction goes row by row (pairwise
    summation, one row at a time); gemv runs over all rows at once, several times faster
    (layer norm and softmax rows of a GPT)."""
    ones = _constant_vector(get_array_module(x), x.shape[-1], x.dtype, 1)
    return (x.reshape(-1, x.shape[-1]) @ ones).reshape(*x.shape[:-1], 1)


def row_maxes(x):
    """x.max(axis=-1, keepdims=True) (softmax's shift), NaN where a row has one.

    NumPy's max over rows of a few hundred numbers or fewer goes row by row, slowly; its
    argmax does not. So on NumPy, for such rows, each row's argmax, then one gather of
    those elements: the same numbers (argmax picks a NaN first, as max returns one), about
    3x faster on attention rows ([48, 64, 64]: 160 -> 54 µs) and on a GPT's logits and layer
    norm rows ([768, 65], [768, 128]: 35 -> 16, 46 -> 18); from rows of ~1024 on, max wins."""
    xp, n = get_array_module(x), x.shape[-1] if x.ndim else 0
    if xp is not np or not 1 < n <= 1024 or x.size < 4096 or not x.flags.c_contiguous:
        return x.max(axis=-1, keepdims=True)
    where = x.argmax(axis=-1).reshape(-1)
    where += np.arange(0, where.size * n, n)                  # flat index of each row's max
    return x.reshape(-1).take(where).reshape(*x.shape[:-1], 1)


def column_sums(x):
    """x summed over every axis but the last -> [C] (a bias gradient), computed as one
    vector-matrix product: the same gemv instead of NumPy's reduction down the columns."""
    x2 = x.reshape(-1, x.shape[-1])
    return _constant_vector(get_array_module(x), x2.shape[0], x.dtype, 1) @ x2


_ZERO_ROW = 16384  # numbers in the row of zeros positive_part broadcasts


def positive_part(x):
    """max(x, 0) elementwise (ReLU's forward), in x's memory layout; NaN stays NaN.

    NumPy's maximum has a vectorised loop for two arrays but not for an array and a scalar
    on AVX2: np.maximum(x, 0) took 500 µs on 1M float32 numbers against 190 for
    np.maximum(x, zeros). So on NumPy x is read in memory order as rows of _ZERO_ROW
    numbers and compared with one cached row of zeros (169-198 µs there); CuPy's kernel
    takes the scalar."""
    xp = get_array_module(x)
    if xp is not np or x.size < _ZERO_ROW:
        return xp.maximum(x, 0)
    out = np.empty_like(x)                              # x's memory layout (order "K")
    flat_x, flat_out = x.ravel(order="K"), out.ravel(order="K")     # views when x is dense
    if not (np.may_share_memory(flat_x, x) and np.may_share_memory(flat_out, out)):
        np.maximum(x, 0, out=out)                       # x is not one dense block of memory
        return out
    zeros = _constant_vector(np, _ZERO_ROW, x.dtype, 0)
    n, whole = x.size, x.size - x.size % _ZERO_ROW
    np.maximum(flat_x[:whole].reshape(-1, _ZERO_ROW), zeros,
               out=flat_out[:whole].reshape(-1, _ZERO_ROW))
    np.maximum(flat_x[whole:], zeros[:n - whole], out=flat_out[whole:])
    return out


def mm(a, b):
    """a @ b for 2-D a and b.

    When the inner size is 1 that product is an outer product, for which NumPy's matmul
    leaves BLAS for a slow generic loop (over ten times slower); a broadcast a * b gives
    the same numbers. It happens in Linear's backward through Linear(in, 1), a GAN
    discriminator's last layer."""
    return a * b if a.shape[1] == 1 else a @ b


# The batch-last layout. Conv layers keep images as [C, H, W, N] buffers (batch last: every
# im2col/col2im copy then moves runs of N contiguous numbers, see ops/conv.py) and hand out
# their result as an [N, C, H, W] *view* of such a buffer, as PyTorch's channels_last
# tensors do. NumPy's elementwise ops keep that memory order, so batch norm and activations
# in between stay batch-last, and the next layer finds its input already laid out. The
# three functions below define the layout; its consumers ask `is_batch_last`.

def is_batch_last(x):
    """True when the batch axis (axis 0) of x is the last in memory: x [N, ...] is a view
    of a contiguous [..., N] buffer. An array that is C-contiguous as well (one image, one
    feature) is not: either memory order serves it."""
    if x.ndim < 2 or x.flags.c_contiguous:
        return False
    return x.transpose(*range(1, x.ndim), 0).flags.c_contiguous


def to_batch_last(x):
    """[N, ...] -> a contiguous [..., N] buffer: free when x is_batch_last, one copy otherwise.

    NumPy's own transposing copy of a large batch reads each output row's N numbers from N
    places far apart, missing the cache on every one; copying 16 images at a time keeps
    the rows being read in cache (several times faster for a [100, 24, 32, 32] batch)."""
    xp = get_array_module(x)
    rows = x.transpose(*range(1, x.ndim), 0)
    if rows.flags.c_contiguous or xp is not np or x.size < 1 << 16:
        return xp.ascontiguousarray(rows)
    N = x.shape[0]
    flat, out = x.reshape(N, -1), np.empty((x[0].size, N), x.dtype)
    for n in range(0, N, 16):
        out[:, n:n + 16] = flat[n:n + 16].T
    return out.reshape(rows.shape)


def from_batch_last(rows):
    """[..., N] buffer -> [N, ...]: a view, not a copy, which is_batch_last recognises."""
    return rows.transpose(rows.ndim - 1, *range(rows.ndim - 1))


def channel_sums(x3):
    """x3 [N, C, L] summed over N and L -> [C] (batch norm's statistics).

    A batch-last x3 is one [C, L*N] matrix in memory: one pass of row sums, on NumPy by
    einsum's vectorised loop rather than gemv: OpenBLAS's gemv at 2 threads took 3.9 ms for
    a [16, 65536] matrix with the other core busy, einsum 0.10 (2-core EPYC, load 2.5), and
    every BatchNorm of a conv net sums this way. Otherwise each image's rows are summed
    first, then the [N, C] partial sums over the batch."""
    N, C, L = x3.shape
    if is_batch_last(x3):
        rows = x3.transpose(1, 2, 0).reshape(C, L * N)
        if get_array_module(x3) is np:  # einsum's loop: no BLAS threads (see above)
            return np.einsum("cm->c", rows)
        return row_sums(rows)[:, 0]
    per_image = row_sums(x3.reshape(N * C, L)).reshape(N, C) if L > 1 else x3.reshape(N, C)
    return column_sums(per_image)


def channel_dots(a3, b3):
    """Σ a3 b3 over N and L -> [C], for a3, b3 [N, C, L] (batch norm's variance and weight
    gradient) without the product array: when both are batch-last, each channel's row of
    L*N numbers is one BLAS dot (NumPy's matmul of [C, 1, M] by [C, M, 1] rows; one thread,
    it calls no threaded BLAS): 132-139 µs on [16, 65536] rows against 290-380 for
    channel_sums(a3 * b3) (2-core EPYC, AVX2). Otherwise channel_sums of the product."""
    N, C, L = a3.shape
    if get_array_module(a3) is np and is_batch_last(a3) and is_batch_last(b3):
        ra = a3.transpose(1, 2, 0).reshape(C, 1, L * N)
        rb = b3.transpose(1, 2, 0).reshape(C, L * N, 1)
        return np.matmul(ra, rb).reshape(C)
    return channel_sums(a3 * b3)


def index_add(out, idx, values):
    """out[idx[i]] += values[i] for every i, adding (not overwriting) when idx repeats:
    NumPy's np.add.at(out, idx, values), the backward of an embedding lookup.

    np.add.at works one row at a time; sorting the indices and summing each run of equal
    ones with np.add.reduceat is several times faster on the CPU. CuPy's add.at is already
    an atomic scatter-add kernel."""
    if get_array_module(out) is not np:
        cp.add.at(out, idx, values)
        return out
    if idx.size == 0:
        return out
    if out.ndim == 2 and values.ndim == 2 and out.shape[0] <= 256 and (
            idx.size * out.shape[0] <= 1 << 22):
        # few rows (a character vocabulary, codebook entries): one_hot(idx)ᵀ @ values, one
        # BLAS product (16384 tokens of 384 into 65 rows: 10.6 ms against 25.6 sorted)
        one_hot = np.zeros((idx.size, out.shape[0]), values.dtype)
        one_hot[np.arange(idx.size), idx] = 1
        out += one_hot.T @ values
        return out
    order = np.argsort(idx, kind="stable")
    sorted_idx = idx[order]
    starts = np.flatnonzero(np.r_[True, sorted_idx[1:] != sorted_idx[:-1]])
    out[sorted_idx[starts]] += np.add.reduceat(values[order], starts, axis=0)
    return out


def tune_allocator():
    """Keep freed NumPy buffers inside the process instead of returning them to the OS.

    glibc hands every freed block above 128 KiB (its mmap threshold) straight back to the
    kernel, so each training step faults the same pages in again. Measured on a GPT
    baby step (2-core machine): ~28k minor page faults per step, 40-90 ms of a ~90 ms
    step. Raising the mmap, trim and top-pad thresholds makes glibc reuse those blocks,
    which PyTorch's caching allocator does for it. Set TINYGEN_TUNE_MALLOC=0 to opt out.
    Only Linux with glibc is affected.
    """
    if os.environ.get("TINYGEN_TUNE_MALLOC", "1") == "0" or not sys.platform.startswith(
            "linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # from glibc's malloc.h
    ok = libc.mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024)
    ok &= libc.mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024 * 1024)
    ok &= libc.mallopt(M_TOP_PAD, 256 * 1024 * 1024)
    return bool(ok)


# ---- index bounds without a host sync -------------------------------------------------------
# CuPy wraps an out-of-range integer index around where NumPy raises. Reading the indices back
# to check them would stall the GPU every step, so a device array's check is queued instead:
# one flag on the device, OR-ed with each new check, read at the next device->host transfer
# (`to_numpy`, Tensor.item(): the logging point), which then raises the IndexError.
_pending = {"flag": None, "ops": []}


def check_index_bounds(idx, low, high, op, what="index {bad} is out of range [{low}, {high})"):
    """Raise IndexError unless every entry of the integer array `idx` is in [low, high).

    A NumPy array is checked at once, on the host (before any upload). A CuPy array is
    checked on the device without a sync: the error is raised at the next `to_numpy` or
    `Tensor.item()`, naming `op`. `what` formats the message from bad, low and high."""
    if getattr(idx, "size", 1) == 0:
        return
    if get_array_module(idx) is np:
        idx = np.asarray(idx)
        lo, hi = int(idx.min()), int(idx.max())
        if lo < low or hi >= high:
            bad = hi if hi >= high else lo
            raise IndexError(f"{op}: " + what.format(bad=bad, low=low, high=high))
        return
    bad = ((idx < low) | (idx >= high)).any()              # a 0-d device array, no sync
    flag = _pending["flag"]
    _pending["flag"] = bad if flag is None else flag | bad
    if f"{op} [{low}, {high})" not in _pending["ops"]:
        _pending["ops"].append(f"{op} [{low}, {high})")


def raise_pending_index_errors():
    """Read the queued device-side bounds flag (one sync) and raise if any check failed."""
    flag, ops = _pending["flag"], _pending["ops"]
    if flag is None:
        return
    _pending["flag"], _pending["ops"] = None, []
    if bool(flag):
        raise IndexError(f"an integer index on the GPU was out of range in one of: "
                         f"{', '.join(ops)} (checked on the device, reported at this sync)")


def read_floats(array):
    """to_numpy of a floating-point array, with the queued device-side bounds flag (see
    check_index_bounds) carried in the same transfer: one sync where to_numpy makes two.
    For a loop's diagnostics, read once at its end."""
    flag = _pending["flag"]
    if get_array_module(array) is np or flag is None:
        return to_numpy(array)
    both = cp.concatenate([array.reshape(-1), flag.astype(array.dtype).reshape(1)])
    _pending["flag"] = None
    host = cp.asnumpy(both)
    if host[-1]:
        _pending["flag"] = flag  # raise_pending_index_errors reads it again and names the ops
        raise_pending_index_errors()
    _pending["ops"] = []
    return host[:-1].reshape(array.shape)


# ---- host-to-device copies from pinned memory ---------------------------------------------
# The GPU copies host memory with DMA only from page-locked ("pinned") pages: from ordinary
# pageable memory the driver first copies into a pinned buffer of its own and the host waits
# for that. Data that has to stream from the host (a batch of a dataset too big to upload,
# an environment's observations) is therefore staged in pinned host arrays that live as long
# as the loop, and copied with `copy_to_device`, which only queues the copy on the current
# stream: the host goes on (CUDA C Programming Guide, "Page-Locked Host Memory" and
# "Asynchronous Concurrent Execution").

def pinned_empty(shape, dtype, device):
    """An uninitialised NumPy array to stage uploads to `device` in: page-locked memory for
    "cuda" (what cupyx.empty_pinned does, from cupy.cuda.alloc_pinned_memory), a plain
    np.empty on the CPU, where nothing is uploaded."""
    if check_device(device) != "cuda":
        return np.empty(shape, dtype)
    dtype = np.dtype(dtype)
    mem = cp.cuda.alloc_pinned_memory(max(int(np.prod(shape)) * dtype.itemsize, 1))
    return np.ndarray(shape, dtype=dtype, buffer=mem)


def copy_to_device(host, out):
    """out[...] = host for a NumPy `host` and a device array `out` of its shape and dtype (a
    NumPy `out` on the CPU), without waiting: on the GPU the copy is queued on the current
    stream, so `host` must not change until the stream has reached it. Returns None on the
    CPU, on the GPU a CUDA event recorded after the copy: its `synchronize()` waits for this
    copy only (the host's way to know when `host` may be written again)."""
    if get_array_module(out) is np:
        out[...] = host
        return None
    stream = cp.cuda.get_current_stream()
    out.set(host, stream=stream)
    return stream.record()

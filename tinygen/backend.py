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


def tune_allocator():
    """Keep freed NumPy buffers inside the process instead of returning them to the OS.

    glibc hands every freed block above 128 KiB (its mmap threshold) straight back to the
    kernel, so each training step faults the same pages in again: tens of thousands of
    minor page faults per step, up to half of a small model's step time on a 2-core
    machine (see ANCHORS.md). Raising the mmap threshold and the trim threshold makes
    glibc reuse those blocks, which is what PyTorch's caching allocator does for it.
    Set TINYGEN_TUNE_MALLOC=0 to opt out. Only Linux with glibc is affected.
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


def default_rng(device, seed):
    """A random Generator on `device`: NumPy's PCG64 on the CPU, CuPy's on the GPU."""
    return module_for(device).random.default_rng(seed)


def index_add(out, idx, values):
    """out[idx[i]] += values[i] for every i, adding (not overwriting) when idx repeats.

    This is the backward of an embedding lookup. NumPy's `np.add.at` does it one row at a
    time; sorting the indices and summing each run of equal ones with `np.add.reduceat`
    is 3-6x faster on the CPU. CuPy's `add.at` is already an atomic scatter-add kernel.
    """
    if get_array_module(out) is not np:
        cp.add.at(out, idx, values)
        return out
    if idx.size == 0:
        return out
    order = np.argsort(idx, kind="stable")
    sorted_idx = idx[order]
    starts = np.flatnonzero(np.r_[True, sorted_idx[1:] != sorted_idx[:-1]])
    out[sorted_idx[starts]] += np.add.reduceat(values[order], starts, axis=0)
    return out


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

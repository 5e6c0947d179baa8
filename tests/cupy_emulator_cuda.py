"""The CuPy emulator's `cupy.cuda` (tests/cupy_emulator.py): device queries, synchronize,
pinned host memory and streams, just enough for tinygen's transfers and their counts."""

import types
import weakref

import numpy as np
from cupy_names import CUDA, EVENT, STREAM

_PINNED = []  # weak references to the byte arrays of pinned buffers


def _is_pinned(arr):
    """True when `arr` lies in a buffer from cuda.alloc_pinned_memory."""
    alive = [ref for ref in _PINNED if ref() is not None]
    _PINNED[:] = alive
    return any(np.shares_memory(arr, ref()) for ref in alive)


def _alloc_pinned_memory(nbytes):
    """cuda.alloc_pinned_memory: CuPy returns a PinnedMemoryPointer, which NumPy arrays are
    built on through the buffer protocol (numpy.ndarray(shape, dtype, buffer=mem), as
    cupyx.empty_pinned does); here a NumPy byte array that is remembered as pinned."""
    mem = np.empty(int(nbytes), np.uint8)
    _PINNED.append(weakref.ref(mem))
    return mem


class _Event:
    done = True  # the emulator runs everything at once: an event has always happened

    def synchronize(self):
        pass  # a wait on the stream, not a transfer: not counted


class _Current:
    """`with x:` / `x.use()` make x current; the emulator has only one of each."""

    def use(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Stream(_Current):
    def record(self, event=None):
        return _Event() if event is None else event

    def synchronize(self):
        pass


_NULL_STREAM = _Stream()


class _Device(_Current):
    def __init__(self, device=0):
        self.id = int(device)

    def synchronize(self):
        pass  # a barrier, not a transfer: nothing is counted


class _MemoryPool:
    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_all_blocks(self):
        pass


_POOL = _MemoryPool()


def _build_cuda():
    cuda = types.ModuleType("cupy.cuda")
    cuda.Device = _Device
    cuda.runtime = types.SimpleNamespace(getDeviceCount=lambda: 1,
                                         deviceSynchronize=lambda: None, is_hip=False)
    cuda.MemoryPool = _MemoryPool
    cuda.get_device_id = lambda: 0
    cuda.is_available = lambda: True
    cuda.alloc_pinned_memory = _alloc_pinned_memory
    cuda.Stream, cuda.Event = _Stream, _Event
    cuda.get_current_stream = lambda: _NULL_STREAM
    modelled = {n for n in dir(cuda) if not n.startswith("_")}
    assert modelled <= CUDA, modelled - CUDA                     # only CuPy's names
    assert {n for n in dir(_Stream) if not n.startswith("_")} <= STREAM
    assert {n for n in dir(_Event) if not n.startswith("_")} <= EVENT
    return cuda

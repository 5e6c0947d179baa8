"""A strict stand-in for CuPy 14 on NumPy, so every "cuda" test runs on a machine without a GPU.

What it models:
- a distinct device array type, `ndarray`, holding a NumPy array that no host code can reach
  by accident: `np.asarray(device_array)` raises TypeError (CuPy's "Implicit conversion to
  a NumPy array is not allowed"), and a NumPy array inside device arithmetic raises TypeError
  (CuPy's "Unsupported type <class 'numpy.ndarray'>"); `.get()` / `cupy.asnumpy` copy back;
- only the names real CuPy 14.2 has (tests/cupy_names.py, read from CuPy with dir()): module
  functions, ndarray methods, random.Generator methods (no permutation, choice, normal,
  shuffle), and the ufunc methods per ufunc (`add.reduceat` only, `.at` for add, subtract,
  maximum, minimum and the bitwise ones); anything else is an AttributeError or, for ufunc
  methods, NotImplementedError, as in CuPy;
- CuPy's semantics where they differ from NumPy's: reductions and integer indexing give 0-d
  device arrays, never NumPy scalars; out-of-range integer-array indices wrap around
  (CuPy's advanced indexing) instead of raising; random.Generator.random/standard_normal take
  only float32/float64;
- counts, in `COUNTS`: `launches` (one per call that computes on the device: a ufunc, a
  reduction, a copy, an advanced index, a matmul; views such as reshape, transpose and basic
  slices are free), `syncs` (device->host: .get(), asnumpy, .item(), .tolist(), bool(), int(),
  float(), and data-dependent shapes: boolean-mask indexing, nonzero, unique, ...) and
  `uploads` (host->device copies), of which `pinned_uploads` were `ndarray.set(host, stream)`
  from page-locked memory (`cuda.alloc_pinned_memory`, as cupyx.empty_pinned uses it): the
  copies that can run asynchronously; every other upload reads pageable memory;
- pinned host memory and streams, just enough for that: `cuda.alloc_pinned_memory(nbytes)`
  gives a buffer that NumPy arrays can be built on (and that the emulator remembers as
  pinned), `cuda.get_current_stream()` a stream whose `record()` gives an event.

What it does not model: kernels (a launch here is one NumPy call; CuPy may fuse some or split
others, so the counts are estimates to compare code paths, not CuPy's exact figures), numerics
(results are NumPy's bit for bit, cuBLAS/cuRAND differ in rounding and streams), speed,
memory, asynchrony (a copy "queued on a stream" happens at once; an event is always done),
multiple devices, ElementwiseKernel/RawKernel/fuse (they raise
NotImplementedError), and CuPy's own bit streams for random numbers (NumPy's PCG64 here).
"""

import types
import weakref

import numpy as np
from cupy_names import (
    CUDA,
    EVENT,
    GENERATOR,
    LINALG,
    MODULE,
    NDARRAY,
    RANDOM,
    STREAM,
    UFUNC_METHODS,
    UFUNCS,
)


class Counts:
    """Kernel launches, host synchronisations and uploads since the last reset()."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.launches = self.syncs = self.uploads = self.pinned_uploads = 0

    def snapshot(self):
        return {"launches": self.launches, "syncs": self.syncs, "uploads": self.uploads,
                "pinned_uploads": self.pinned_uploads}


COUNTS = Counts()
_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to "
             "construct a NumPy array explicitly.")


def _host_error(x):
    return TypeError(f"Unsupported type {type(x)}")


def _unwrap(x):
    """A device array's NumPy payload; a NumPy array is a host array in device code: raise."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        raise _host_error(x)
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    return x


def _wrap(r):
    """NumPy results back onto the 'device': scalars become 0-d arrays as in CuPy."""
    if isinstance(r, np.ndarray):
        return ndarray._of(r)
    if isinstance(r, np.generic) and not isinstance(r, (np.str_, np.bytes_)):
        return ndarray._of(np.asarray(r))
    if isinstance(r, tuple):
        return tuple(_wrap(v) for v in r)
    if isinstance(r, list):
        return [_wrap(v) for v in r]
    return r


def _launch(fn, *args, **kwargs):
    COUNTS.launches += 1
    return _wrap(fn(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()}))


# ---- indexing: CuPy wraps out-of-range integer-array indices --------------------------------
def _index_key(a, key):
    """Translate a device index into a NumPy one: device/host integer arrays wrap modulo the
    axis length (CuPy), boolean masks need the host to know the output size (a sync)."""
    key = key if isinstance(key, tuple) else (key,)
    n_axes = sum(k.ndim if _is_bool_array(k) else (0 if k is None or k is Ellipsis else 1)
                 for k in key)
    out, axis, advanced = [], 0, False
    for k in key:
        if k is Ellipsis:
            out.append(k)
            axis += a.ndim - n_axes
            continue
        if k is None:
            out.append(k)
            continue
        if isinstance(k, (list, np.ndarray, ndarray)):
            if isinstance(k, ndarray):
                k = k._a
            else:
                COUNTS.uploads += 1  # CuPy copies a host index array to the device
                k = np.asarray(k)
            advanced = True
            if k.dtype == np.bool_:
                COUNTS.syncs += 1  # the output size depends on the mask's contents
                out.append(k)
                axis += k.ndim
                continue
            if k.dtype.kind in "iu" and a.shape[axis] > 0:
                k = np.mod(k, a.shape[axis])
            out.append(k)
            axis += 1
            continue
        out.append(k)
        axis += 1
    return tuple(out), advanced


def _is_bool_array(k):
    arr = k._a if isinstance(k, ndarray) else k
    return isinstance(arr, np.ndarray) and arr.dtype == np.bool_


class ndarray:  # CuPy's name
    """A device array. Only CuPy's attributes and methods exist on it."""

    __slots__ = ("__weakref__", "_a")
    __array_priority__ = 100
    __hash__ = None

    def __init__(self, shape, dtype=float, order="C"):
        COUNTS.launches += 0  # cupy.ndarray(shape) allocates without a kernel
        self._a = np.empty(shape, dtype=dtype, order=order)

    @classmethod
    def _of(cls, a):
        out = object.__new__(cls)
        out._a = a
        return out

    # ---- what CuPy refuses or syncs on ------------------------------------------------------
    def __array__(self, *args, **kwargs):
        raise TypeError(_IMPLICIT)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if ufunc.__name__ not in UFUNCS:
            return NotImplemented
        return getattr(getattr(_module, ufunc.__name__), method)(*inputs, **kwargs)

    def __array_function__(self, func, types_, args, kwargs):
        name = func.__name__
        if name not in MODULE or not callable(getattr(_module, name, None)):
            raise TypeError(f"cupy has no {name} for a NumPy call on a device array")
        return getattr(_module, name)(*args, **kwargs)

    def _to_host(self):
        COUNTS.syncs += 1
        return self._a

    def get(self, stream=None, order="C", out=None, blocking=True):
        a = self._to_host().copy()
        if out is not None:
            out[...] = a
            return out
        return a

    def set(self, arr, stream=None):
        """A host-to-device copy into this (contiguous) array of arr's shape and dtype; from
        pinned memory with a stream it is asynchronous in CuPy, and counted as pinned."""
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, got {type(arr)}")
        if arr.shape != self._a.shape or arr.dtype != self._a.dtype:
            raise ValueError(f"set: shape and dtype mismatch: {arr.shape} {arr.dtype} into "
                             f"{self._a.shape} {self._a.dtype}")
        if not self._a.flags.c_contiguous:
            raise RuntimeError("Cannot set to non-contiguous array")
        COUNTS.uploads += 1
        if stream is not None and _is_pinned(arr):
            COUNTS.pinned_uploads += 1
        self._a[...] = arr

    def item(self):
        return self._to_host().item()

    def tolist(self):
        return self._to_host().tolist()

    def tobytes(self, order="C"):
        return self._to_host().tobytes(order)

    def __bool__(self):
        if self._a.size != 1:
            raise ValueError("The truth value of an array with more than one element is "
                             "ambiguous.")
        return bool(self._to_host())

    def __int__(self):
        return int(self._to_host())

    def __float__(self):
        return float(self._to_host())

    def __complex__(self):
        return complex(self._to_host())

    def __index__(self):
        if self._a.dtype.kind not in "iu" or self._a.ndim:
            raise TypeError("only integer scalar arrays can be converted to a scalar index")
        return int(self._to_host())

    def __repr__(self):
        return repr(self._to_host()).replace("array(", "array(", 1)

    def __str__(self):
        return str(self._to_host())

    def __len__(self):
        if not self._a.ndim:
            raise TypeError("len() of unsized object")
        return len(self._a)

    def __iter__(self):
        if not self._a.ndim:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def __reduce__(self):
        return (_from_host, (self.get(),))

    # ---- attributes -------------------------------------------------------------------------
    shape = property(lambda self: self._a.shape, lambda self, s: setattr(self, "_a",
                                                                           self._a.reshape(s)))
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray._of(self._a.T))
    mT = property(lambda self: ndarray._of(np.swapaxes(self._a, -1, -2)))
    real = property(lambda self: ndarray._of(self._a.real))
    imag = property(lambda self: ndarray._of(self._a.imag))
    device = property(lambda self: _Device(0))

    @property
    def base(self):
        return None if self._a.base is None else ndarray._of(self._a.base)

    # ---- views: no kernel -------------------------------------------------------------------
    def reshape(self, *shape, order="C"):
        r = self._a.reshape(*shape, order=order)
        if not np.shares_memory(r, self._a) and self._a.size:
            COUNTS.launches += 1  # a copy
        return ndarray._of(r)

    def view(self, dtype=None):
        return ndarray._of(self._a.view() if dtype is None else self._a.view(dtype))

    def transpose(self, *axes):
        return ndarray._of(self._a.transpose(*axes))

    def swapaxes(self, a1, a2):
        return ndarray._of(self._a.swapaxes(a1, a2))

    def squeeze(self, axis=None):
        return ndarray._of(self._a.squeeze(axis))

    def ravel(self, order="C"):
        return self.reshape(-1, order=order)

    def diagonal(self, offset=0, axis1=0, axis2=1):
        return ndarray._of(self._a.diagonal(offset, axis1, axis2))

    # ---- methods that run a kernel ----------------------------------------------------------
    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        if not copy and np.dtype(dtype) == self._a.dtype:
            return self
        return _launch(self._a.astype, dtype, order=order, copy=True)

    def copy(self, order="C"):
        return _launch(self._a.copy, order=order)

    def flatten(self, order="C"):
        return _launch(self._a.flatten, order=order)

    def fill(self, value):
        COUNTS.launches += 1
        self._a.fill(_unwrap(value))

    def __getattr__(self, name):
        if name in NDARRAY and hasattr(np.ndarray, name):
            method = getattr(self._a, name)
            return lambda *args, **kwargs: _launch(method, *args, **kwargs)
        if name in ("scatter_add", "scatter_max", "scatter_min"):
            ufunc = {"scatter_add": np.add, "scatter_max": np.maximum,
                     "scatter_min": np.minimum}[name]
            return lambda slices, value: _scatter(ufunc, self, slices, value)
        raise AttributeError(f"'cupy.ndarray' object has no attribute '{name}'")

    # ---- indexing ---------------------------------------------------------------------------
    def __getitem__(self, key):
        key, advanced = _index_key(self, key)
        r = self._a[key]
        if advanced:
            COUNTS.launches += 1
        return _wrap(r)

    def __setitem__(self, key, value):
        key, _ = _index_key(self, key)
        if isinstance(value, np.ndarray):
            COUNTS.uploads += 1  # CuPy copies the host value over first
        else:
            value = _unwrap(value)
        COUNTS.launches += 1
        self._a[key] = value


def _from_host(a):
    return ndarray._of(np.array(a))


def _scatter(ufunc, a, indices, value):
    key, _ = _index_key(a, indices)
    COUNTS.launches += 1
    ufunc.at(a._a, key, _unwrap(value))


# ---- operators: every arithmetic dunder is one kernel, a NumPy operand raises ---------------
def _binary(op, reflected=False):
    def method(self, other):
        if isinstance(other, np.ndarray):
            raise _host_error(other)
        if not isinstance(other, (ndarray, int, float, complex, bool, np.generic)):
            return NotImplemented
        a, b = (other, self) if reflected else (self, other)
        return _launch(op, a, b)
    return method


def _inplace(op):
    def method(self, other):
        if isinstance(other, np.ndarray):
            raise _host_error(other)
        COUNTS.launches += 1
        op(self._a, _unwrap(other), out=self._a)
        return self
    return method


for _name, _op in [("add", np.add), ("sub", np.subtract), ("mul", np.multiply),
                   ("truediv", np.true_divide), ("floordiv", np.floor_divide),
                   ("mod", np.remainder), ("pow", np.power), ("matmul", np.matmul),
                   ("and", np.bitwise_and), ("or", np.bitwise_or), ("xor", np.bitwise_xor),
                   ("lshift", np.left_shift), ("rshift", np.right_shift),
                   ("divmod", np.divmod)]:
    setattr(ndarray, f"__{_name}__", _binary(_op))
    setattr(ndarray, f"__r{_name}__", _binary(_op, reflected=True))
    if _name not in ("divmod", "matmul"):
        setattr(ndarray, f"__i{_name}__", _inplace(_op))
for _name, _op in [("lt", np.less), ("le", np.less_equal), ("gt", np.greater),
                   ("ge", np.greater_equal), ("eq", np.equal), ("ne", np.not_equal)]:
    setattr(ndarray, f"__{_name}__", _binary(_op))
for _name, _op in [("neg", np.negative), ("pos", np.positive), ("abs", np.absolute),
                   ("invert", np.invert)]:
    setattr(ndarray, f"__{_name}__", lambda self, _op=_op: _launch(_op, self))


# ---- the module -----------------------------------------------------------------------------
class ufunc:
    """A CuPy ufunc: callable, with only the methods CuPy implements for this one."""

    def __init__(self, name):
        self.__name__ = self.name = name
        self._np = getattr(np, name)
        self.nin, self.nout = getattr(self._np, "nin", 1), getattr(self._np, "nout", 1)

    def __call__(self, *args, **kwargs):
        out = kwargs.get("out")
        if out is not None and not isinstance(out, (ndarray, tuple)):
            raise TypeError(f"out must be a cupy.ndarray, got {type(out)}")
        r = _launch(self._np, *args, **kwargs)
        return out if isinstance(out, ndarray) else r

    def __repr__(self):
        return f"<ufunc 'cupy_{self.name}'>"

    def _method(self, method):
        if self.name not in UFUNC_METHODS.get(method, ()) and method != "outer":
            raise NotImplementedError(f"`{self.name}.{method}` is not supported yet")
        return getattr(self._np, method)

    def reduce(self, *args, **kwargs):
        return _launch(self._method("reduce"), *args, **kwargs)

    def accumulate(self, *args, **kwargs):
        return _launch(self._method("accumulate"), *args, **kwargs)

    def reduceat(self, array, indices, axis=0, dtype=None, out=None):
        return _launch(self._method("reduceat"), array, indices, axis=axis, dtype=dtype)

    def outer(self, a, b, **kwargs):
        return _launch(self._method("outer"), a, b, **kwargs)

    def at(self, a, indices, b=None):
        self._method("at")
        if not isinstance(a, ndarray):
            raise TypeError(f"{self.name}.at: a must be a cupy.ndarray, got {type(a)}")
        _scatter(self._np, a, indices, 0 if b is None else b)


def _asarray(a, dtype=None, order=None, *, blocking=False):
    if isinstance(a, ndarray):
        if dtype is None or np.dtype(dtype) == a.dtype:
            return a
        return a.astype(dtype)
    COUNTS.uploads += 1
    if isinstance(a, (list, tuple)) and any(isinstance(v, ndarray) for v in a):
        return _launch(np.array, a, dtype=dtype)  # CuPy stacks device arrays on the device
    return ndarray._of(np.array(a, dtype=dtype, order=order or "K"))


def _array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if isinstance(obj, ndarray):
        return _launch(np.array, obj, dtype=dtype, copy=True, order=order, ndmin=ndmin)
    COUNTS.uploads += 1
    if isinstance(obj, (list, tuple)) and any(isinstance(v, ndarray) for v in obj):
        return _launch(np.array, obj, dtype=dtype)
    return ndarray._of(np.array(obj, dtype=dtype, order=order, ndmin=ndmin))


def _asnumpy(a, stream=None, order="C", out=None, blocking=True):
    if isinstance(a, ndarray):
        return a.get(out=out)
    return np.asarray(a, order=order)


def _get_array_module(*args):
    return _module if any(isinstance(a, ndarray) for a in args) else np


# functions whose output shape depends on the data: CuPy reads it back to the host first
_SYNCING = {"nonzero", "flatnonzero", "argwhere", "unique", "unique_all", "unique_counts",
            "unique_inverse", "unique_values", "compress", "extract", "bincount",
            "count_nonzero_indices", "trim_zeros", "intersect1d", "setdiff1d", "union1d"}


_ALLOCATING = {"empty", "empty_like"}  # memory from the pool, no kernel (as cupy.ndarray(shape))


def _function(name):
    fn = getattr(np, name)

    def call(*args, **kwargs):
        if name in _SYNCING:
            COUNTS.syncs += 1
        if name in _ALLOCATING:
            return _wrap(fn(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()}))
        return _launch(fn, *args, **kwargs)
    call.__name__ = name
    return call


def _not_modelled(name):
    def call(*args, **kwargs):
        raise NotImplementedError(f"cupy.{name}: the CuPy emulator does not model it")
    return call


def _constant_or_type(value):
    return isinstance(value, (type, float, int, np.dtype)) or value is None


_EXPLICIT = {"ndarray": ndarray, "ufunc": ufunc, "asarray": _asarray, "array": _array,
             "asnumpy": _asnumpy, "get_array_module": _get_array_module,
             "ascontiguousarray": lambda a, dtype=None: _asarray(a, dtype),
             "is_available": lambda: True,
             "get_default_memory_pool": lambda: _POOL,
             "get_default_pinned_memory_pool": lambda: _POOL}


def _build_module():
    mod = types.ModuleType("cupy", "CuPy 14 emulator on NumPy (tests/cupy_emulator.py)")
    for name in MODULE:
        if name in _EXPLICIT:
            value = _EXPLICIT[name]
        elif name in UFUNCS:
            value = ufunc(name)
        elif name in ("random", "linalg", "cuda", "fft", "testing", "lib", "polynomial",
                      "typing", "exceptions"):
            continue  # submodules, below
        elif hasattr(np, name) and _constant_or_type(getattr(np, name)):
            value = getattr(np, name)
        elif hasattr(np, name) and callable(getattr(np, name)):
            value = _function(name)
        else:
            value = _not_modelled(name)
        setattr(mod, name, value)
    for name in ("newaxis", "pi", "e", "inf", "nan"):
        setattr(mod, name, getattr(np, name))
    mod.random = _build_random()
    mod.linalg = _submodule("cupy.linalg", LINALG, np.linalg)
    mod.cuda = _build_cuda()
    mod.COUNTS = COUNTS
    mod.__version__ = "14.2.0-emulated"
    return mod


def _submodule(qualname, names, source):
    sub = types.ModuleType(qualname)
    for name in names:
        value = getattr(source, name, None)
        if value is None:
            setattr(sub, name, _not_modelled(name))
        elif isinstance(value, type):
            setattr(sub, name, value)
        else:
            setattr(sub, name, lambda *a, _fn=value, **k: _launch(_fn, *a, **k))
    return sub


# ---- random: a Generator with CuPy's methods only -------------------------------------------
class Generator:
    """cupy.random.Generator's methods (GENERATOR); NumPy's PCG64 supplies the numbers."""

    def __init__(self, seed=None):
        self._rng = np.random.default_rng(seed)

    def __getattr__(self, name):
        if name not in GENERATOR:
            raise AttributeError(f"'cupy.random._generator_api.Generator' object has no "
                                 f"attribute '{name}'")
        method = getattr(self._rng, name)

        def draw(*args, **kwargs):
            dtype = kwargs.get("dtype")
            if name in ("random", "standard_normal") and dtype is not None and np.dtype(
                    dtype) not in (np.float32, np.float64):
                raise TypeError(f"Generator.{name}: unsupported dtype {dtype}")
            COUNTS.launches += 1
            return ndarray._of(np.asarray(method(*_unwrap(args), **_unwrap(kwargs))))
        return draw


def _build_random():
    rnd = types.ModuleType("cupy.random")
    for name in RANDOM:
        setattr(rnd, name, _not_modelled(name))
    rnd.Generator = Generator
    rnd.default_rng = Generator
    return rnd


# ---- cuda: just enough for device queries, synchronize, pinned memory and streams ----------
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


_module = _build_module()
cupy = _module  # `from cupy_emulator import cupy`

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

Files: the device array, its indexing, operators and COUNTS in cupy_emulator_array.py;
`cupy.cuda` (devices, streams, pinned memory) in cupy_emulator_cuda.py; here, the module
that puts them together: ufuncs, module functions, random, linalg.
"""

import types

import numpy as np
from cupy_emulator_array import COUNTS, _launch, _scatter, _unwrap, _wrap, ndarray
from cupy_emulator_cuda import _POOL, _build_cuda
from cupy_names import GENERATOR, LINALG, MODULE, RANDOM, UFUNC_METHODS, UFUNCS


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


_module = _build_module()
cupy = _module  # `from cupy_emulator import cupy`

"""The CuPy emulator's device array (tests/cupy_emulator.py): `ndarray`, holding a NumPy array
that host code cannot reach by accident, its indexing with CuPy's wrap-around, its operators
(each one kernel launch), and the counts of launches, syncs and uploads."""

import numpy as np
from cupy_emulator_cuda import _Device, _is_pinned
from cupy_names import MODULE, NDARRAY, UFUNCS


def _cupy():
    """The emulated module, which tests/cupy_emulator.py builds around this file's ndarray."""
    from cupy_emulator import cupy
    return cupy


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
        return getattr(getattr(_cupy(), ufunc.__name__), method)(*inputs, **kwargs)

    def __array_function__(self, func, types_, args, kwargs):
        name = func.__name__
        if name not in MODULE or not callable(getattr(_cupy(), name, None)):
            raise TypeError(f"cupy has no {name} for a NumPy call on a device array")
        return getattr(_cupy(), name)(*args, **kwargs)

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

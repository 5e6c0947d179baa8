"""How many threads NumPy's BLAS (OpenBLAS) uses, set while the program runs:
`tg.set_num_threads(n)` and `tg.get_num_threads()`, as torch.set_num_threads does for
PyTorch's intra-op threads. Small matrices and a busy machine are why one sets it: on a
shared 2-core machine, OpenBLAS's threads fighting for the cores made each PPO update 40x
slower (demos/ppo_cartpole.py).

The environment variable OPENBLAS_NUM_THREADS only works if set before NumPy loads; this
calls OpenBLAS itself. NumPy's wheels bundle OpenBLAS under another name
(libscipy_openblas64_-<hash>.so, its symbols prefixed `scipy_` and suffixed `64_`), so it is
found as threadpoolctl finds it: among the shared libraries this process has loaded, by
file name, then by the symbol names each build uses.
"""

import ctypes
import glob
import os

import numpy as np

_LIBRARY_NAMES = ("libopenblas", "libscipy_openblas", "openblas")
_SYMBOL_FORMS = [(pre, suf) for pre in ("scipy_", "") for suf in ("64_", "_64", "")]
_openblas = None  # {name: ctypes function} once found, False if there is none


def _loaded_libraries():
    """Paths of the shared libraries loaded into this process (Linux: /proc/self/maps;
    elsewhere: the libraries NumPy's wheel ships beside itself)."""
    if os.path.exists("/proc/self/maps"):
        with open("/proc/self/maps") as f:
            return sorted({line.split()[-1] for line in f if "/" in line})
    root = os.path.dirname(os.path.dirname(np.__file__))
    return sorted(glob.glob(os.path.join(root, "numpy*", "*openblas*"))
                  + glob.glob(os.path.join(root, "numpy", ".dylibs", "*openblas*")))


# OpenBLAS's functions used here: name -> (restype, argtypes)
_FUNCTIONS = {"set_num_threads": (None, [ctypes.c_int]), "get_num_threads": (ctypes.c_int, []),
              "get_corename": (ctypes.c_char_p, []), "get_config": (ctypes.c_char_p, [])}


def _find_openblas():
    """{"set_num_threads": f, ...}: OpenBLAS's own functions (_FUNCTIONS), or False."""
    global _openblas
    if _openblas is None:
        _openblas = False
        for path in _loaded_libraries():
            if not os.path.basename(path).lower().startswith(_LIBRARY_NAMES):
                continue
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for pre, suf in _SYMBOL_FORMS:
                found = {name: getattr(lib, f"{pre}openblas_{name}{suf}", None)
                         for name in _FUNCTIONS}
                if all(f is not None for f in found.values()):
                    for name, f in found.items():
                        f.restype, f.argtypes = _FUNCTIONS[name]
                    _openblas = found
                    return _openblas
    return _openblas


def set_num_threads(n):
    """Use `n` (an int >= 1) BLAS threads from now on. Returns None, like PyTorch's."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"set_num_threads: n={n!r}: must be an int >= 1")
    found = _find_openblas()
    if not found:
        raise RuntimeError("set_num_threads: NumPy's BLAS is not OpenBLAS (or was not "
                           "found), so its threads cannot be set at run time; set its own "
                           "environment variable (MKL_NUM_THREADS, VECLIB_MAXIMUM_THREADS) "
                           "before starting Python")
    found["set_num_threads"](int(n))


def get_num_threads():
    """The number of threads OpenBLAS uses now (None if NumPy's BLAS is not OpenBLAS)."""
    found = _find_openblas()
    return found["get_num_threads"]() if found else None


def openblas_kernels():
    """(kernels, build configuration) of the OpenBLAS this process runs, e.g. ("SkylakeX",
    "OpenBLAS 0.3.31 DYNAMIC_ARCH ..."): the kernel set a DYNAMIC_ARCH build picked for
    this CPU when it loaded (see tinygen/openblas_core.py). None if NumPy's BLAS is not
    OpenBLAS."""
    found = _find_openblas()
    if not found:
        return None
    return (found["get_corename"]().decode(), " ".join(found["get_config"]().decode().split()))

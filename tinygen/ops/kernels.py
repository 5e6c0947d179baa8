"""Hand-written CUDA kernels: where their sources are, the switch that turns them on, and
their compilation with CuPy's RawModule (lazily, once per source file).

Every kernel is OFF by default: none has yet been compared with its reference on a real
GPU (docs/gpu_kernels.md says how to do that in one command). Turn some on with

    from tinygen.ops import kernels
    kernels.enable({"layer_norm", "gelu"})    # or kernels.enable() for all of them

or TINYGEN_CUDA_KERNELS=layer_norm,gelu (or "all") in the environment. A kernel runs
only on CuPy float32 arrays; anything else (the CPU, other dtypes) takes the reference
array code in ops/kernel_calls.py, which is also what runs while the switch is off.
"""

import os
import re
from pathlib import Path

import numpy as np

from tinygen import backend

ROOT = Path(__file__).resolve().parent.parent          # tinygen/

# switch name -> CUDA source (relative to tinygen/), one file per kernel family
KERNELS = {
    "layer_norm": "ops/normalization.cu",          # forward, backward input and params
    "gelu": "ops/activation.cu",                   # GELU and bias + GELU, both directions
    "attention_softmax": "ops/attention.cu",       # scale + causal mask + softmax, backward
    "cross_entropy": "ops/loss.cu",                # loss and gradient in one pass
    "adam": "optim/adam.cu",                       # Adam/AdamW over a flat buffer
    "dropout": "ops/dropout.cu",                   # Philox-4x32-10 masks
    "im2col": "ops/conv.cu",                       # im2col and col2im
}

_INCLUDE = re.compile(r'^#include "([^"]+)"\s*$', re.MULTILINE)
_enabled = set()
_modules = {}   # source path -> cupy.RawModule


def _names(names):
    if names is None or names == "all":
        return set(KERNELS)
    names = {names} if isinstance(names, str) else set(names)
    unknown = names - set(KERNELS)
    if unknown:
        raise ValueError(f"cuda kernels: unknown {sorted(unknown)}; known: {sorted(KERNELS)}")
    return names


def enable(names=None):
    """Switch kernels on (all of them when names is None or "all")."""
    _enabled.update(_names(names))


def disable(names=None):
    """Switch kernels off (all of them when names is None or "all")."""
    _enabled.difference_update(_names(names))


def enabled(name):
    """Whether kernel family `name` is switched on."""
    if name not in KERNELS:
        raise ValueError(f"cuda kernels: unknown {name!r}; known: {sorted(KERNELS)}")
    return name in _enabled


def _from_environment():
    value = os.environ.get("TINYGEN_CUDA_KERNELS", "").strip()
    if value:
        enable("all" if value == "all" else [v.strip() for v in value.split(",") if v.strip()])


def use(name, *arrays):
    """True when `name` is on and every array given (None is skipped) is a CuPy float32
    array: the condition for a dispatch function to launch the kernel."""
    if name not in _enabled or backend.cp is None:
        return False
    return all(a is None or (isinstance(a, backend.cp.ndarray) and a.dtype == np.float32)
               for a in arrays)


def source(name):
    """The CUDA source of kernel family `name`, with its `#include "..."` of sibling headers
    (reduce.cuh) written out in place. Expanding them here, not with NVRTC's -I, means the
    text CuPy caches its compiled module under changes whenever a header does, and the CI
    compile check compiles exactly what a GPU run would."""
    path = ROOT / KERNELS[name]

    def expand(text, folder):
        return _INCLUDE.sub(lambda m: expand((folder / m.group(1)).read_text(),
                                             folder), text)

    return expand(path.read_text(), path.parent)


def module(name):
    """The compiled cupy.RawModule of kernel family `name` (compiled on first use)."""
    if backend.cp is None:
        raise RuntimeError(f"cuda kernels: {name!r} needs CuPy (pip install tinygen[gpu])")
    if name not in _modules:
        _modules[name] = backend.cp.RawModule(code=source(name), options=("--std=c++14",))
    return _modules[name]


def launch(name, kernel, grid, block, args):
    """Launch `kernel` of family `name` on the current stream."""
    module(name).get_function(kernel)(grid, block, args)


def grid_1d(n, threads=256, max_blocks=8192):
    """Blocks for a grid-stride loop over n items: enough to fill the GPU, never 0."""
    return (max(1, min((n + threads - 1) // threads, max_blocks)),)


def row_threads(n):
    """Threads for a block that strides over a row of n: a multiple of 32, 32 .. 1024."""
    return min(1024, max(32, (n + 31) // 32 * 32))


_from_environment()

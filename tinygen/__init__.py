"""tinygen: a small, readable deep-learning library on NumPy (CPU) and CuPy (GPU)."""

from tinygen.autograd import Function, enable_grad, is_grad_enabled, no_grad
from tinygen.backend import cuda_available, tune_allocator
from tinygen.creation import (
    arange,
    as_tensor,
    bool_,
    float16,
    float32,
    float64,
    full,
    int32,
    int64,
    ones,
    ones_like,
    rand,
    randint,
    randn,
    tensor,
    zeros,
    zeros_like,
)
from tinygen.gradcheck import gradcheck
from tinygen.random import get_rng_state, manual_seed, set_rng_state
from tinygen.serialization import CheckpointError, load, save
from tinygen.tensor import Tensor, cat, stack, where
from tinygen.threads import get_num_threads, set_num_threads

tune_allocator()  # reuse freed buffers instead of page-faulting them back in each step

__all__ = [
    "CheckpointError", "Function", "Tensor", "arange", "as_tensor", "bool_", "cat",
    "cuda_available", "enable_grad", "float16", "float32", "float64", "full",
    "get_num_threads", "get_rng_state", "gradcheck", "int32", "int64",
    "is_grad_enabled", "load", "manual_seed", "no_grad", "ones", "ones_like", "rand", "randint",
    "randn", "save", "set_num_threads", "set_rng_state", "stack", "tensor", "where", "zeros", "zeros_like"]

"""tinygen: a small, readable deep-learning library on NumPy (CPU) and CuPy (GPU)."""

from tinygen import linalg  # tg.linalg, as torch.linalg
from tinygen.autograd import Function, enable_grad, is_grad_enabled, no_grad
from tinygen.backend import cuda_available, tune_allocator
from tinygen.creation import (
    arange,
    as_tensor,
    bool_,
    empty,
    empty_like,
    eye,
    float16,
    float32,
    float64,
    full,
    full_like,
    int32,
    int64,
    linspace,
    multinomial,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    tensor,
    zeros,
    zeros_like,
)
from tinygen.functions import *  # the torch.* function forms: tg.exp, tg.sort, ...
from tinygen.functions_shape import *  # ... tg.flip, tg.gather, tg.einsum, tg.outer
from tinygen.gradcheck import gradcheck
from tinygen.random import get_rng_state, manual_seed, set_rng_state
from tinygen.serialization import CheckpointError, load, save
from tinygen.tensor import Tensor, cat, stack, where
from tinygen.threads import get_num_threads, set_num_threads

tune_allocator()  # reuse freed buffers instead of page-faulting them back in each step

__all__ = [
    "CheckpointError", "Function", "Tensor", "arange", "as_tensor", "bool_", "cat",
    "cuda_available", "empty", "empty_like", "enable_grad", "eye", "float16", "float32",
    "float64", "full", "full_like", "get_num_threads", "get_rng_state", "gradcheck", "int32",
    "int64", "is_grad_enabled", "linalg", "linspace", "load", "manual_seed", "multinomial", "no_grad",
    "ones", "ones_like", "rand", "rand_like", "randint", "randn", "randn_like", "save",
    "set_num_threads", "set_rng_state", "stack", "tensor", "where", "zeros", "zeros_like"]

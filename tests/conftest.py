"""Shared setup for the tinygen tests: hypothesis profiles, the `device` fixture, and the
strategies and checks that several test files use (import them with `from conftest import`).

Hypothesis profiles, picked with the environment variable TINYGEN_HYPOTHESIS_PROFILE:
  ci        (default) 15 examples per test, derandomized so that every CI run is the same
  dev       100 examples, random, remembers failures in .hypothesis/
  thorough  500 examples, for a long run before a release
"""

import importlib
import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygen as tg
import tinygen.backend

# The "cuda" device: real CuPy where it sees a GPU, else the strict CuPy emulator
# (tests/cupy_emulator.py), so every "cuda" case runs on every machine. TINYGEN_EMULATE_CUDA=0
# turns the emulator off (the cuda cases then skip without a GPU).
EMULATED_CUDA = not tg.cuda_available() and os.environ.get("TINYGEN_EMULATE_CUDA", "1") != "0"
if EMULATED_CUDA:
    from cupy_emulator import cupy as _emulated_cupy

    tinygen.backend.cp = _emulated_cupy

# The `device` fixture below is function-scoped but only hands out a string, so it is safe
# to share between the examples of one @given test.
_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture]}
settings.register_profile("ci", max_examples=15, derandomize=True, database=None, **_COMMON)
settings.register_profile("dev", max_examples=100, **_COMMON)
settings.register_profile("thorough", max_examples=500, **_COMMON)
settings.load_profile(os.environ.get("TINYGEN_HYPOTHESIS_PROFILE", "ci"))

needs_cuda = pytest.mark.skipif(not tg.cuda_available(), reason="needs CuPy and a GPU")


# The devices every device-parametrised test runs on, declared once: the `device` fixture
# uses them, and a test that cannot take the fixture writes
# @pytest.mark.parametrize("device", DEVICES).
DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]


@pytest.fixture(params=DEVICES)
def device(request):
    """Every test that takes `device` runs once per backend present (CuPy skips without GPU)."""
    return request.param


# ---- strategies ---------------------------------------------------------------------------
# Shapes stay small: gradcheck does two forward passes per input element.
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
SHAPES_1D_UP = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
BROADCAST_PAIRS = hnp.mutually_broadcastable_shapes(
    num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=4)


def floats(lo=-3.0, hi=3.0):
    """Finite floats in [lo, hi]; no subnormals, whose products underflow to 0."""
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def away_from_zero(lo=0.2, hi=3.0):
    """Either sign, |x| >= lo: keeps abs/relu/division away from their kink or pole."""
    return st.one_of(floats(-hi, -lo), floats(lo, hi))


def arrays(shape, elements=None):
    return hnp.arrays(np.float64, shape, elements=floats() if elements is None else elements)


def distinct_arrays(shape, step=0.05):
    """float64 arrays whose entries are all different (by at least `step`): max/min and clip
    then stay far from ties and kinks compared with gradcheck's eps."""
    ints = hnp.arrays(np.int64, shape, elements=st.integers(-60, 60), unique=True)
    return ints.map(lambda a: a * step)


@st.composite
def axis_args(draw, ndim):
    """An `axis` argument for a tensor with `ndim` dims: None, an int or a tuple of ints,
    negative ones included."""
    if ndim == 0:
        return None
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    return draw(hnp.valid_tuple_axes(ndim, min_size=1))


# ---- checks -------------------------------------------------------------------------------
def leaf(array, device, requires_grad=True):
    """A float64 leaf tensor on `device` holding its own copy of `array`."""
    return tg.tensor(np.array(array, dtype=np.float64), device=device,
                     requires_grad=requires_grad)


def check_grad(fn, arrays_, device):
    """Analytic gradient of fn(*tensors) against float64 central differences, every input."""
    inputs = [leaf(a, device) for a in arrays_]
    # rtol tighter than gradcheck's default: float64 central differences are much better
    assert tg.gradcheck(fn, inputs, atol=1e-5, rtol=1e-5)


def assert_forward(out, expected, rtol=1e-10, atol=1e-12):
    """A tinygen result equals the NumPy expression: same shape, same values."""
    expected = np.asarray(expected)
    assert isinstance(out, tg.Tensor)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=rtol, atol=atol)


def torch_twin(module_name, class_name, tinygen_model, *args, **kwargs):
    """The PyTorch twin of a tinygen model from benchmarks/<module_name>.py, loaded with the
    model's weights (benchmarks/common.copy_weights), then widened to float64 (exactly: every
    float32 is a float64). Skips the test when torch is not installed."""
    pytest.importorskip("torch")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))
    from common import copy_weights

    twin = getattr(importlib.import_module(module_name), class_name)(*args, **kwargs)
    return copy_weights(twin, tinygen_model).double()


def assert_same_loss_and_grads(model, loss, twin, loss_t):
    """After backward on both: tinygen (float32) agrees with the float64 twin, each gradient
    to float32 rounding relative to the largest gradient entry (a bias before a BatchNorm
    has a true gradient of 0, so a relative test alone would compare rounding noise)."""
    assert abs(loss.item() - loss_t.item()) < 1e-4 * abs(loss_t.item())
    grads_t = {name: p.grad.numpy() for name, p in twin.named_parameters()}
    scale = max(float(np.abs(g).max()) for g in grads_t.values())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), grads_t[name], rtol=2e-3, atol=1e-4 * scale,
                                   err_msg=name)


def torch_from(array):
    """A NumPy array as a torch tensor for a float64 twin (floats widened, ints kept)."""
    import torch

    array = np.asarray(array)
    return torch.from_numpy(array.astype(np.float64) if array.dtype.kind == "f" else array)

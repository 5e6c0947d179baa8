"""Bad input gets a clear error that names the operation and the shapes or devices involved,
never a NumPy stack trace from deep inside and never a silently wrong answer."""

import re

import numpy as np
import pytest
from conftest import needs_cuda

import tinygen as tg
import tinygen.backend


def raises(exc, *parts):
    """pytest.raises whose message must contain every one of `parts`, literally."""
    return pytest.raises(exc, match="(?s)" + "".join(f"(?=.*{re.escape(p)})" for p in parts))


@pytest.mark.parametrize("op, name", [
    (lambda a, b: a + b, "add"), (lambda a, b: a - b, "sub"), (lambda a, b: a * b, "mul"),
    (lambda a, b: a / b, "div")])
def test_broadcast_mismatch_names_op_and_shapes(device, op, name):
    a, b = tg.ones(2, 3, device=device), tg.ones(4, device=device)
    with raises(ValueError, name, "(2, 3)", "(4,)"):
        op(a, b)


def test_matmul_inner_dimension_mismatch(device):
    with raises(ValueError, "matmul", "(2, 3)", "(4, 2)"):
        tg.ones(2, 3, device=device) @ tg.ones(4, 2, device=device)
    with raises(ValueError, "matmul", "(5, 2, 3)", "(7, 3, 2)"):  # batch dims that clash
        tg.ones(5, 2, 3, device=device) @ tg.ones(7, 3, 2, device=device)
    with raises(ValueError, "matmul"):
        tg.ones(3, device=device) @ tg.tensor(2.0, device=device)


def test_reshape_to_an_incompatible_shape(device):
    with raises(ValueError, "reshape", "(2, 3)", "(4, 2)"):
        tg.ones(2, 3, device=device).reshape(4, 2)


@pytest.mark.parametrize("axes", [(0, 0), (0,), (0, 1, 2)])
def test_bad_permute(device, axes):
    with raises(ValueError, "permute", "(2, 3)"):
        tg.ones(2, 3, device=device).permute(*axes)


def test_squeeze_of_an_axis_that_is_not_1_is_a_no_op(device):
    """PyTorch leaves an axis of another size alone (this used to raise)."""
    assert tg.ones(2, 1, 3, device=device).squeeze(0).shape == (2, 1, 3)
    with raises(ValueError, "squeeze"):
        tg.ones(2, 1, 3, device=device).squeeze(3)


def test_expand_to_an_incompatible_shape(device):
    with raises(ValueError, "expand", "(2, 3)"):
        tg.ones(2, 3, device=device).expand(4, 3)


@pytest.mark.parametrize("reduce", [
    lambda t: t.sum(2), lambda t: t.mean(axis=-3), lambda t: t.max(dim=5),
    lambda t: t.min((0, 2)), lambda t: t.var(2), lambda t: t.softmax(2),
    lambda t: t.log_softmax(-3)])
def test_out_of_range_axis_of_a_reduction(device, reduce):
    with pytest.raises((ValueError, IndexError), match=r"axis -?\d+ is out of"):
        reduce(tg.ones(2, 3, device=device))


def test_cat_of_mismatched_shapes(device):
    with raises(ValueError, "cat", "(2, 3)", "(2, 4)"):
        tg.cat([tg.ones(2, 3, device=device), tg.ones(2, 4, device=device)])
    with raises(ValueError, "cat"):
        tg.cat([])


def test_index_out_of_bounds(device):
    with raises(IndexError, "getitem", "(2, 3)"):
        tg.ones(2, 3, device=device)[5]


def test_where_with_two_scalars_is_a_tensor():
    """PyTorch accepts two Python scalars (this used to raise)."""
    out = tg.where(np.array([True, False]), 1.0, 2.0)
    assert out.dtype == np.float32 and out.tolist() == [1.0, 2.0]


def test_unknown_device_is_named():
    with raises(ValueError, "tpu"):
        tg.tensor([1.0], device="tpu")
    with raises(ValueError, "tpu"):
        tg.zeros(2, device="tpu")
    with raises(ValueError, "tpu"):
        tg.ones(2).to("tpu")
    with raises(TypeError, "device"):
        tg.tensor([1.0], device=0)


def test_cuda_without_a_gpu_says_why(monkeypatch):
    monkeypatch.setattr(tinygen.backend, "cp", None)  # as without CuPy (or its emulator)
    with raises(RuntimeError, "cuda", "CuPy"):
        tg.tensor([1.0], device="cuda")
    with raises(RuntimeError, "cuda"):
        tg.randn(2, device="cuda")
    with raises(RuntimeError, "cuda"):
        tg.ones(2).cuda()


@needs_cuda
def test_mixed_devices_name_both():
    with raises(RuntimeError, "add", "cpu", "cuda"):
        tg.ones(2) + tg.ones(2, device="cuda")
    with raises(RuntimeError, "matmul", "cpu", "cuda"):
        tg.ones(2, 2, device="cuda") @ tg.ones(2, 2)


# ---- out-of-range axes and odd exceptions -------------------------------
def test_permute_out_of_range_axis(device):
    with raises(ValueError, "permute"):
        tg.ones(2, 3, device=device).permute(0, 3)


def test_squeeze_out_of_range_axis(device):
    with raises(ValueError, "squeeze"):
        tg.ones(1, 3, device=device).squeeze(2)


def test_unsqueeze_out_of_range_axis(device):
    with raises(ValueError, "unsqueeze"):
        tg.ones(1, 3, device=device).unsqueeze(5)


def test_transpose_out_of_range_axis(device):
    with raises((ValueError, IndexError), "transpose", "(1, 3)"):
        tg.ones(1, 3, device=device).transpose(0, 5)


def test_error_wrapping_survives_any_numpy_exception():
    with raises(TypeError, "add"):
        tg.tensor([1.0]) + tg.tensor(np.array(["a"]))

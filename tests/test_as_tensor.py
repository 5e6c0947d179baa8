"""tg.as_tensor: torch.as_tensor's semantics (no copy when nothing changes) plus `like=`."""

import numpy as np
import pytest

import tinygen as tg


def test_a_tensor_of_the_right_dtype_and_device_is_returned_itself():
    t = tg.randn(3)
    assert tg.as_tensor(t) is t
    assert tg.as_tensor(t, like=tg.zeros(2)) is t
    assert tg.as_tensor(t, dtype=tg.float32, device="cpu") is t


def test_an_array_is_wrapped_without_a_copy():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = tg.as_tensor(a)
    assert np.shares_memory(t.data, a) and t.dtype == np.float32 and not t.requires_grad


def test_like_gives_floats_its_float_dtype_and_keeps_integer_ids():
    like = tg.zeros(2)                                           # float32
    assert tg.as_tensor(np.ones(3), like=like).dtype == np.float32   # a float64 array
    assert tg.as_tensor(0.5, like=like).dtype == np.float32
    assert tg.as_tensor(np.arange(3), like=like).dtype == np.int64   # token ids stay ints
    assert tg.as_tensor(np.ones(3), like=tg.zeros(2, dtype=tg.float64)).dtype == np.float64
    ids = tg.as_tensor([[1, 2]], like=like)
    assert ids.dtype == np.int64 and ids.device == like.device


def test_explicit_dtype_wins_over_like_and_casts_a_tensor():
    like = tg.zeros(2)
    assert tg.as_tensor(np.ones(3), like=like, dtype=tg.float64).dtype == np.float64
    t = tg.ones(2, dtype=tg.float64)
    assert tg.as_tensor(t, like=like).dtype == np.float32
    assert tg.as_tensor(t, dtype=tg.float32).dtype == np.float32


def test_lists_and_numbers_follow_tg_tensor():
    assert tg.as_tensor([1.0, 2.0]).dtype == np.float32          # Python floats -> float32
    assert tg.as_tensor([1, 2]).dtype == np.int64
    assert tg.as_tensor(True).dtype == np.bool_


@pytest.mark.skipif(not tg.cuda_available(), reason="no GPU")
def test_like_and_device_move_to_the_gpu():
    like = tg.zeros(2, device="cuda")
    assert tg.as_tensor(np.ones(3), like=like).device == "cuda"
    t = tg.ones(2)
    assert tg.as_tensor(t, device="cuda").device == "cuda"

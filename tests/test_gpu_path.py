"""The GPU path on the CuPy emulator (tests/cupy_emulator.py) or real CuPy: the emulator is
strict, devices never change silently, index errors surface without a sync inside a step."""

import numpy as np
import pytest
from conftest import EMULATED_CUDA

import tinygen as tg
import tinygen.nn.functional as F
from tinygen import backend

needs_emulator = pytest.mark.skipif(not EMULATED_CUDA, reason="runs on the CuPy emulator")


@needs_emulator
def test_the_emulator_is_strict():
    cp = backend.cp
    a = cp.asarray(np.arange(6.0).reshape(2, 3))
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError, match="Unsupported type"):
        a + np.ones(3)
    assert isinstance(a.sum(), cp.ndarray) and a.sum().shape == ()   # 0-d, not a scalar
    assert float(a[cp.asarray([5])][0, 0]) == 3.0                     # wraps: 5 % 2 == 1
    assert not hasattr(cp.random.default_rng(0), "permutation")
    assert not hasattr(cp, "float128") and not hasattr(a, "itemset")
    with pytest.raises(NotImplementedError):
        cp.multiply.reduceat(a, [0])
    cp.COUNTS.reset()
    b = (a * 2).sum()
    assert cp.COUNTS.launches == 2 and cp.COUNTS.syncs == 0
    b.item()
    assert cp.COUNTS.syncs == 1


def test_tensor_of_a_device_array_stays_there(device):
    x = tg.randn(3, device=device)
    assert tg.tensor(x.data).device == device
    assert tg.tensor([1.0, 2.0]).device == "cpu"


def test_backward_moves_a_numpy_grad(device):
    x = tg.randn(3, device=device, requires_grad=True)
    (x * 2).backward(np.ones(3, dtype=np.float32))
    np.testing.assert_allclose(x.grad.numpy(), 2.0)


@pytest.mark.parametrize("op", ["embedding", "cross_entropy", "getitem"])
def test_out_of_range_indices_raise_on_every_device(device, op):
    w = tg.randn(4, 3, device=device, requires_grad=True)
    idx = tg.tensor(np.array([0, 4]), device=device)     # 4 is out of range for 4 rows

    def run():
        if op == "embedding":
            return F.embedding(idx, w).sum()
        if op == "cross_entropy":
            return F.cross_entropy(w, tg.tensor(np.array([0, 1, 2, 3]) + 1, device=device))
        return w[idx].sum()
    with pytest.raises(IndexError):
        run().item()           # on the GPU: at the sync, which is where a log line reads it
    backend._pending.update(flag=None, ops=[])


def test_ignore_index_is_not_out_of_range(device):
    logits = tg.randn(3, 5, device=device)
    loss = F.cross_entropy(logits, tg.tensor(np.array([1, -100, 4]), device=device))
    assert np.isfinite(loss.item())


@needs_emulator
def test_host_state_on_a_device_model_is_refused():
    x = tg.randn(4, 2, device="cuda")
    with pytest.raises(RuntimeError, match="running_mean"):
        F.batch_norm(x, tg.zeros(2), tg.ones(2, device="cuda"), training=True)
    q = tg.randn(1, 3, 2, device="cuda")
    with pytest.raises(RuntimeError, match="attn_mask"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((3, 3), dtype=bool))


@needs_emulator
def test_bounds_checks_do_not_sync():
    cp = backend.cp
    w = tg.randn(10, 3, device="cuda", requires_grad=True)
    idx = tg.tensor(np.array([[1, 2], [3, 9]]), device="cuda")
    cp.COUNTS.reset()
    loss = F.cross_entropy(F.embedding(idx, w).reshape(4, 3) @ w.T, idx.reshape(-1))
    loss.backward()
    assert cp.COUNTS.syncs == 0
    loss.item()
    assert cp.COUNTS.syncs == 2          # the queued bounds flag and the loss: one log point

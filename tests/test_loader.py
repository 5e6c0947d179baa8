"""stream_to_device: batches of host arrays on the device, staged in pinned memory on a GPU
(#14, "what must stream, from pinned memory"); the same batches as indexing on the host."""

import numpy as np
import pytest
from conftest import EMULATED_CUDA

import tinygen as tg
from tinygen import backend
from tinygen.data.images import iterate_minibatches
from tinygen.data.loader import minibatch_steps, stream_to_device


def _data(n=37):
    rng = np.random.default_rng(0)
    return (rng.random((n, 3, 4, 4)).astype(np.float32),
            rng.integers(0, 10, size=n).astype(np.int64))


def test_stream_gives_the_host_batches_on_the_device(device):
    x, y = _data()
    batches = list(iterate_minibatches(len(x), 8, np.random.default_rng(1), drop_last=False))
    got = list(stream_to_device((x, y), batches, device, depth=2))
    assert len(got) == len(batches) and len(batches[-1]) == 5          # a short last batch
    # every batch kept to the end is intact: a later batch never overwrites an earlier one
    for (xb, yb), idx in zip(got, batches):
        assert isinstance(xb, tg.Tensor) and xb.device == yb.device == device
        assert xb.dtype == np.float32 and yb.dtype == np.int64
        np.testing.assert_array_equal(xb.numpy(), x[idx])
        np.testing.assert_array_equal(yb.numpy(), y[idx])


def test_stream_follows_a_step_budget():
    x, _ = _data(10)
    steps = list(minibatch_steps(10, 4, 5, np.random.default_rng(2)))
    got = list(stream_to_device((x,), (idx for _, idx in steps), "cpu"))
    assert len(got) == 5
    for (xb,), (_, idx) in zip(got, steps):
        np.testing.assert_array_equal(xb.numpy(), x[idx])


@pytest.mark.skipif(not EMULATED_CUDA, reason="counts uploads on the CuPy emulator")
def test_streaming_uploads_from_pinned_memory_without_a_sync():
    cp = backend.cp
    x, y = _data()
    batches = list(iterate_minibatches(len(x), 8, np.random.default_rng(1)))
    cp.COUNTS.reset()
    for xb, yb in stream_to_device((x, y), batches, "cuda", depth=2):
        total = xb.sum() + yb.sum()                      # a "training step" on the device
        assert total.device == "cuda"
    assert cp.COUNTS.uploads == cp.COUNTS.pinned_uploads == 2 * len(batches)
    assert cp.COUNTS.syncs == 0
    # the plain way (tg.tensor(x[idx], device="cuda")) copies from pageable memory
    cp.COUNTS.reset()
    tg.tensor(x[batches[0]], device="cuda")
    assert cp.COUNTS.uploads == 1 and cp.COUNTS.pinned_uploads == 0


def test_stream_checks_its_arguments():
    x, y = _data()
    with pytest.raises(ValueError, match="same length"):
        next(stream_to_device((x, y[:5]), [np.arange(3)], "cpu"))
    with pytest.raises(ValueError, match="depth=0"):
        next(stream_to_device((x,), [np.arange(3)], "cpu", depth=0))

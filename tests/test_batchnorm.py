"""Batch norm (F.batch_norm, nn.BatchNorm1d/2d): the layers against PyTorch over several
training steps, running statistics, state_dict, eval mode and the bad-input errors. (The
Function's gradcheck, composition, float32 and device checks are cases of the harness:
tests/op_cases.py.)"""

import numpy as np
import pytest

import tinygen as tg
import tinygen.nn.functional as F
from tinygen import nn

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
EPS = 1e-5


def test_running_stats_use_the_unbiased_variance():
    x = np.array([[1.0, 10.0], [3.0, 10.0], [8.0, 16.0]])          # [N=3, C=2]
    rm, rv = tg.zeros(2, dtype=tg.float64), tg.ones(2, dtype=tg.float64)
    out = F.batch_norm(tg.tensor(x), rm, rv, training=True, momentum=0.25)
    np.testing.assert_allclose(out.numpy().mean(0), 0, atol=1e-12)  # normalised by the
    np.testing.assert_allclose(out.numpy().var(0), 1, rtol=1e-4)    # biased variance
    np.testing.assert_allclose(rm.numpy(), 0.25 * x.mean(0))
    np.testing.assert_allclose(rv.numpy(), 0.75 + 0.25 * x.var(0, ddof=1))


def test_bias_without_weight():
    x = tg.randn(4, 3, dtype=tg.float64, requires_grad=True)
    b = tg.randn(3, dtype=tg.float64, requires_grad=True)
    out = F.batch_norm(x, None, None, None, b, training=True)
    np.testing.assert_allclose(out.numpy(), F.batch_norm(x, None, None, training=True).numpy()
                               + b.numpy(), rtol=1e-12)
    assert tg.gradcheck(lambda x, b: F.batch_norm(x, None, None, None, b, training=True),
                        [x, b])


# ---- the layers ---------------------------------------------------------------------------
@needs_torch
@pytest.mark.parametrize("shape", [(8, 3), (6, 3, 5), (4, 3, 5, 6)])
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_matches_torch_over_training_steps(shape, momentum, affine):
    """Three training steps (outputs, input and parameter gradients, running statistics),
    then eval mode, which must use the running statistics."""
    cls, torch_cls = ((nn.BatchNorm2d, torch.nn.BatchNorm2d) if len(shape) == 4 else
                      (nn.BatchNorm1d, torch.nn.BatchNorm1d))
    ours = cls(3, momentum=momentum, affine=affine)
    theirs = torch_cls(3, momentum=momentum, affine=affine)
    rng = np.random.default_rng(0)
    if affine:
        ours.weight.data[...] = rng.uniform(0.5, 1.5, 3).astype(np.float32)
        ours.bias.data[...] = rng.standard_normal(3).astype(np.float32)
        theirs.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in
                                ours.state_dict().items()})
    for step in range(3):
        x = (rng.standard_normal(shape) * 3 + step).astype(np.float32)
        xt, xo = torch.tensor(x, requires_grad=True), tg.tensor(x, requires_grad=True)
        out, want = ours(xo), theirs(xt)
        np.testing.assert_allclose(out.numpy(), want.detach().numpy(), rtol=1e-4, atol=1e-5)
        g = rng.standard_normal(shape).astype(np.float32)
        out.backward(g)
        want.backward(torch.from_numpy(g))
        np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-5)
        if affine:
            np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(),
                                       rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(ours.bias.grad.numpy(), theirs.bias.grad.numpy(),
                                       rtol=1e-4, atol=1e-5)
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[name].numpy(), value.numpy(), rtol=1e-5,
                                   atol=1e-6, err_msg=name)
    ours.eval()
    theirs.eval()
    x = rng.standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(ours(tg.tensor(x)).numpy(),
                               theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_state_dict_holds_the_running_stats():
    bn = nn.BatchNorm2d(4)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var",
                                     "num_batches_tracked"]
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]   # buffers not trained
    bn(tg.randn(3, 4, 2, 2) * 2 + 5)
    bn(tg.randn(3, 4, 2, 2))
    state = bn.state_dict()
    assert state["num_batches_tracked"].item() == 2
    assert state["running_mean"].dtype == state["running_var"].dtype == np.float32
    fresh = nn.BatchNorm2d(4)
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh.running_mean.numpy(), bn.running_mean.numpy())
    assert fresh.num_batches_tracked.item() == 2
    x = tg.randn(2, 4, 3, 3)
    np.testing.assert_array_equal(fresh.eval()(x).numpy(), bn.eval()(x).numpy())


def test_eval_mode_uses_and_keeps_running_stats():
    bn = nn.BatchNorm1d(2)
    bn.running_mean.data[...] = [1.0, -1.0]
    bn.running_var.data[...] = [4.0, 0.25]
    bn.eval()
    x = tg.tensor(np.array([[3.0, 0.0], [1.0, -1.5]], dtype=np.float32))
    out = bn(x)
    np.testing.assert_allclose(out.numpy(), [[1, 2], [0, -1]], rtol=1e-4)
    np.testing.assert_array_equal(bn.running_mean.numpy(), [1, -1])        # unchanged
    assert bn.num_batches_tracked.item() == 0
    assert bn(tg.randn(1, 2)).shape == (1, 2)          # one example is fine in eval mode


def test_without_running_stats_uses_batch_stats_in_eval_too():
    bn = nn.BatchNorm1d(3, track_running_stats=False).eval()
    assert bn.running_mean is None and list(bn.state_dict()) == ["weight", "bias"]
    x = tg.randn(5, 3) * 4 + 2
    np.testing.assert_allclose(bn(x).numpy().mean(0), 0, atol=1e-5)


# ---- bad input ----------------------------------------------------------------------------
def test_errors():
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\): expected a 4-D input with 3 "
                                         r"channels.*\(2, 3, 4\)"):
        nn.BatchNorm2d(3)(tg.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\): expected a 2-D or 3-D.*\(2, 4\)"):
        nn.BatchNorm1d(3)(tg.randn(2, 4))
    with pytest.raises(ValueError, match=r"more than 1 value per channel.*\(1, 3\)"):
        nn.BatchNorm1d(3)(tg.randn(1, 3))
    with pytest.raises(ValueError, match=r"batch_norm: weight must have shape \(3,\)"):
        F.batch_norm(tg.randn(2, 3), None, None, tg.ones(4), training=True)
    with pytest.raises(ValueError, match="training=False needs running_mean"):
        F.batch_norm(tg.randn(2, 3), None, None)
    with pytest.raises(ValueError, match=r"batch_norm: expected an input \[N, C, \.\.\.\]"):
        F.batch_norm(tg.randn(3), None, None, training=True)

"""nn's layers and functional ops against PyTorch's (skipped where torch is not installed):
the same outputs and gradients from the same weights and data, and the same state_dict
names."""

import warnings

import numpy as np
import pytest

import tinygen as tg
import tinygen.nn.functional as F
from tinygen import nn


def _both(rng, *shape):
    """The same float32 data as a tinygen tensor and a torch tensor, both requiring grad."""
    torch = pytest.importorskip("torch")
    a = rng.standard_normal(shape).astype(np.float32)
    return tg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def _check_parity(out, tout, pairs, rtol=1e-5, atol=1e-5):
    """Same output, then the same input gradients for one random upstream gradient."""
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=rtol, atol=atol)
    g = np.asarray(np.random.default_rng(1).standard_normal(out.shape), dtype=np.float32)
    out.backward(g)
    tout.backward(torch.tensor(g))
    for ours, theirs in pairs:
        assert ours.grad.dtype == np.float32
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=rtol, atol=atol)


def test_torch_parity_linear():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    (x, tx), (w, tw), (b, tb) = _both(rng, 2, 3, 8), _both(rng, 5, 8), _both(rng, 5)
    _check_parity(F.linear(x, w, b), torch.nn.functional.linear(tx, tw, tb),
                  [(x, tx), (w, tw), (b, tb)])


def test_torch_parity_linear_module():
    """nn.Linear with torch's weights, copied through state_dict, computes torch's output."""
    torch = pytest.importorskip("torch")
    tlin = torch.nn.Linear(6, 3)
    lin = nn.Linear(6, 3)
    lin.load_state_dict({k: v.detach().numpy() for k, v in tlin.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    np.testing.assert_allclose(lin(tg.tensor(x)).numpy(),
                               tlin(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_torch_parity_gelu():
    torch = pytest.importorskip("torch")
    x, tx = _both(np.random.default_rng(0), 4, 7)
    _check_parity(F.gelu(x * 3, approximate="tanh"), torch.nn.functional.gelu(tx * 3, approximate="tanh"),
                  [(x, tx)])


def test_torch_parity_gelu_at_the_extremes():
    """Far out in the tails e^(-2z) overflows float32; the tanh GELU must still give
    PyTorch's values there (-0 below about -9, nan at -inf), and warn of nothing."""
    torch = pytest.importorskip("torch")
    x = np.array([-np.inf, -1e4, -100, -12, -9, 0, 9, 1e4, np.inf, np.nan], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = F.gelu(tg.tensor(x), approximate="tanh").numpy()
    want = torch.nn.functional.gelu(torch.tensor(x), approximate="tanh").numpy()
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-20)
    assert not np.signbit(y[5]) and np.array_equal(np.isnan(y), np.isnan(want))


def test_torch_parity_layer_norm():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    (x, tx), (w, tw), (b, tb) = _both(rng, 2, 3, 8), _both(rng, 8), _both(rng, 8)
    _check_parity(F.layer_norm(x, (8,), w, b),
                  torch.nn.functional.layer_norm(tx, (8,), tw, tb), [(x, tx), (w, tw), (b, tb)],
                  rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_torch_parity_cross_entropy(reduction):
    torch = pytest.importorskip("torch")
    x, tx = _both(np.random.default_rng(0), 2, 5, 6)
    target = np.array([[0, 5, 2, -100, 1], [3, -100, 4, 4, 0]])
    out = F.cross_entropy(x, target, reduction=reduction)
    tout = torch.nn.functional.cross_entropy(tx.reshape(-1, 6), torch.tensor(target).reshape(-1),
                                             reduction=reduction)
    _check_parity(out.reshape(-1) if reduction == "none" else out, tout, [(x, tx)])


@pytest.mark.parametrize("is_causal", [False, True])
def test_torch_parity_attention(is_causal):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    (q, tq), (k, tk), (v, tv) = (_both(rng, 2, 3, 5, 4) for _ in range(3))
    _check_parity(F.scaled_dot_product_attention(q, k, v, is_causal=is_causal),
                  torch.nn.functional.scaled_dot_product_attention(tq, tk, tv,
                                                                   is_causal=is_causal),
                  [(q, tq), (k, tk), (v, tv)])


def test_torch_parity_attention_bool_mask():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    (q, tq), (k, tk), (v, tv) = (_both(rng, 1, 2, 3, 4) for _ in range(3))
    keep = np.array([[True, False, True], [True, True, False], [False, True, True]])
    _check_parity(F.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=0.7),
                  torch.nn.functional.scaled_dot_product_attention(
                      tq, tk, tv, attn_mask=torch.tensor(keep), scale=0.7),
                  [(q, tq), (k, tk), (v, tv)])


def test_torch_parity_state_dict_names():
    """Our dotted names are PyTorch's for the same structure."""
    torch = pytest.importorskip("torch")
    tmodel = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.LayerNorm(3),
                                 torch.nn.ModuleList([torch.nn.Embedding(4, 3)]))
    model = nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3), nn.ModuleList([nn.Embedding(4, 3)]))
    assert list(model.state_dict()) == list(tmodel.state_dict())

"""tinygen.nn's layers against PyTorch's, with the same weights and inputs: the forward
and every gradient, in float64 (tight) and float32 (the dtype models train in)."""

import numpy as np
import pytest

import tinygen as tg
from tinygen import nn
from tinygen.nn import functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional
TOL = {np.float64: dict(rtol=1e-9, atol=1e-10), np.float32: dict(rtol=2e-5, atol=2e-6)}


def _pair(a, grad=True):
    return (tg.tensor(a, requires_grad=grad), torch.tensor(a, requires_grad=grad))


def parity(ours, theirs, arrays, dtype=np.float64, tol=None, grad_mask=None):
    """ours(*tinygen tensors) and theirs(*torch tensors) on the same arrays: equal outputs
    and equal gradients of sum(out * g) for one random g, for every input array."""
    tol = tol or TOL[dtype]
    pairs = [_pair(np.asarray(a, dtype=dtype)) for a in arrays]
    out, tout = ours(*[p[0] for p in pairs]), theirs(*[p[1] for p in pairs])
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), **tol)
    assert out.dtype == dtype
    g = np.random.default_rng(1).standard_normal(tout.shape).astype(dtype)
    (out * tg.tensor(g)).sum().backward()
    (tout * torch.tensor(g)).sum().backward()
    for i, (a, ta) in enumerate(pairs):
        if grad_mask is not None and not grad_mask[i]:
            continue
        assert a.grad is not None, f"input {i} got no gradient"
        np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), **tol,
                                   err_msg=f"gradient of input {i}")


def data(*shape, seed=0, scale=2.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


# ---- activations ------------------------------------------------------------------------
ACTIVATIONS = [  # (name, tinygen Module, torch Module)
    ("gelu", nn.GELU(), torch.nn.GELU()),
    ("gelu-tanh", nn.GELU("tanh"), torch.nn.GELU("tanh")),
    ("silu", nn.SiLU(), torch.nn.SiLU()),
    ("softplus", nn.Softplus(), torch.nn.Softplus()),
    ("softplus-beta", nn.Softplus(beta=2.0, threshold=3.0),
     torch.nn.Softplus(beta=2.0, threshold=3.0)),
    ("elu", nn.ELU(alpha=0.7), torch.nn.ELU(alpha=0.7)),
    ("selu", nn.SELU(), torch.nn.SELU()),
    ("celu", nn.CELU(alpha=1.3), torch.nn.CELU(alpha=1.3)),
    ("mish", nn.Mish(), torch.nn.Mish()),
    ("hardswish", nn.Hardswish(), torch.nn.Hardswish()),
    ("hardsigmoid", nn.Hardsigmoid(), torch.nn.Hardsigmoid()),
    ("hardtanh", nn.Hardtanh(-0.5, 1.5), torch.nn.Hardtanh(-0.5, 1.5)),
    ("relu6", nn.ReLU6(), torch.nn.ReLU6()),
    ("logsigmoid", nn.LogSigmoid(), torch.nn.LogSigmoid()),
    ("softsign", nn.Softsign(), torch.nn.Softsign()),
    ("glu", nn.GLU(), torch.nn.GLU()),
    ("glu-dim1", nn.GLU(1), torch.nn.GLU(1)),
    ("softmax", nn.Softmax(1), torch.nn.Softmax(1)),
    ("log_softmax", nn.LogSoftmax(-1), torch.nn.LogSoftmax(-1)),
    ("identity", nn.Identity(3, key=1), torch.nn.Identity(3, key=1)),
    ("relu", nn.ReLU(), torch.nn.ReLU()),
    ("leaky_relu", nn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)),
    ("tanh", nn.Tanh(), torch.nn.Tanh()),
    ("sigmoid", nn.Sigmoid(), torch.nn.Sigmoid()),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,ours,theirs", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_parity(name, ours, theirs, dtype):
    x = data(4, 6, 8, scale=3.0)
    x[0, 0, :4] = [40.0, -40.0, 25.0, -25.0]   # the overflow-prone tails
    tol = None
    if name == "gelu" and dtype == np.float64:
        tol = dict(rtol=0, atol=1e-6)   # tg.erf is Abramowitz & Stegun 7.1.26: |error| < 1.5e-7
    if name == "celu" and dtype == np.float64:
        tol = dict(rtol=1e-6, atol=1e-10)  # torch's CELU backward is off by ~1.6e-7 relative
        # (its float64 gradient at -0.5 is 0.68071241, e^(-0.5/1.3) = 0.68071240): ours is exact
    if name == "hardsigmoid" and dtype == np.float64:
        tol = dict(rtol=1e-7, atol=1e-10)  # torch's backward uses 1/6 rounded to float32
    parity(ours, theirs, [x], dtype, tol)


def test_gelu_default_is_exact_and_gpt_keeps_tanh():
    x = tg.tensor(np.linspace(-3, 3, 13))
    exact = torch.nn.functional.gelu(torch.tensor(x.numpy())).numpy()
    np.testing.assert_allclose(F.gelu(x).numpy(), exact, atol=1e-6)
    assert np.abs(F.gelu(x, approximate="tanh").numpy() - exact).max() > 1e-5
    with pytest.raises(ValueError, match="gelu: approximate"):
        F.gelu(x, approximate="erf")


def test_activation_errors():
    with pytest.raises(ValueError, match="glu: .*even"):
        F.glu(tg.randn(2, 3))
    with pytest.raises(ValueError, match="Hardtanh: min_val"):
        nn.Hardtanh(1.0, 0.0)


# ---- normalisation ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", ["rms", "rms-noaffine", "rms-2d", "group", "group-noaffine",
                                  "instance", "instance-affine", "ln-noaffine", "ln-nobias",
                                  "ln-2d"])
def test_norm_parity(kind, dtype):
    torch.manual_seed(0)
    if kind.startswith("rms"):
        shape = (3, 4, 6) if kind == "rms-2d" else (3, 5, 8)
        ns = (4, 6) if kind == "rms-2d" else 8
        ours = nn.RMSNorm(ns, eps=1e-6, elementwise_affine=kind != "rms-noaffine")
        theirs = torch.nn.RMSNorm(ns, eps=1e-6, elementwise_affine=kind != "rms-noaffine")
    elif kind.startswith("group"):
        shape = (2, 6, 3, 4)
        ours = nn.GroupNorm(3, 6, affine=kind == "group")
        theirs = torch.nn.GroupNorm(3, 6, affine=kind == "group")
    elif kind.startswith("instance"):
        shape = (2, 3, 4, 5)
        ours = nn.InstanceNorm2d(3, affine=kind == "instance-affine")
        theirs = torch.nn.InstanceNorm2d(3, affine=kind == "instance-affine")
    else:
        shape = (3, 4, 6) if kind == "ln-2d" else (3, 5, 8)
        ns = (4, 6) if kind == "ln-2d" else 8
        ours = nn.LayerNorm(ns, elementwise_affine=kind != "ln-noaffine",
                            bias=kind != "ln-nobias")
        theirs = torch.nn.LayerNorm(ns, elementwise_affine=kind != "ln-noaffine",
                                    bias=kind != "ln-nobias", dtype=torch.float64)
    names = [n for n, _ in theirs.named_parameters()]
    assert sorted(names) == sorted(n for n, _ in ours.named_parameters())
    params = {n: data(*p.shape, seed=i + 1) for i, (n, p) in enumerate(theirs.named_parameters())}

    def run_ours(x, *ps):
        for n, p in zip(names, ps):
            setattr(ours, n, p)
        return ours(x)

    def run_theirs(x, *ps):
        return torch.func.functional_call(theirs, dict(zip(names, ps)), (x,))

    parity(run_ours, run_theirs, [data(*shape)] + [params[n] for n in names], dtype)


def test_norm_default_init_and_errors():
    assert (nn.RMSNorm(4).weight.numpy() == 1).all()
    g = nn.GroupNorm(2, 4)
    assert (g.weight.numpy() == 1).all() and (g.bias.numpy() == 0).all()
    assert nn.InstanceNorm2d(3).weight is None
    assert nn.LayerNorm(4, elementwise_affine=False).weight is None
    with pytest.raises(ValueError, match="GroupNorm: num_channels 5"):
        nn.GroupNorm(2, 5)
    with pytest.raises(ValueError, match="rms_norm: normalized_shape"):
        F.rms_norm(tg.randn(2, 3), (4,))
    with pytest.raises(ValueError, match="InstanceNorm2d: expected"):
        nn.InstanceNorm2d(3)(tg.randn(2, 3, 4))

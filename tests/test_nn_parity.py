"""tinygen.nn's layers against PyTorch's, with the same weights and inputs: the forward
and every gradient, in float64 (tight) and float32 (the dtype models train in)."""

import numpy as np
import pytest

import tinygen as tg
from tinygen import nn
from tinygen.nn import functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional
TOL = {np.float64: {"rtol": 1e-9, "atol": 1e-10}, np.float32: {"rtol": 2e-5, "atol": 2e-6}}


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
        tol = {"rtol": 0, "atol": 1e-6}   # tg.erf is Abramowitz & Stegun 7.1.26: |error| < 1.5e-7
    if name == "celu" and dtype == np.float64:
        tol = {"rtol": 1e-6, "atol": 1e-10}  # torch's CELU backward is off by ~1.6e-7 relative
        # (its float64 gradient at -0.5 is 0.68071241, e^(-0.5/1.3) = 0.68071240): ours is exact
    if name == "hardsigmoid" and dtype == np.float64:
        tol = {"rtol": 1e-7, "atol": 1e-10}  # torch's backward uses 1/6 rounded to float32
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


# ---- losses -----------------------------------------------------------------------------
CE_OPTIONS = [{}, {"label_smoothing": 0.2}, {"weight": True},
              {"weight": True, "label_smoothing": 0.1}, {"ignore_index": 2},
              {"weight": True, "ignore_index": 2, "label_smoothing": 0.3}]


def _ce_call(fn, x, target, opts, weight, lib):
    opts = dict(opts)
    if opts.pop("weight", False):
        opts["weight"] = weight
    return fn(x, target, **opts)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(6, 5), (3, 5, 4), (2, 5, 3, 2), (5,)], ids=str)
@pytest.mark.parametrize("opts", CE_OPTIONS, ids=str)
@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
def test_class_loss_parity(loss, opts, shape, reduction, dtype):
    """Integer targets, classes on axis 1 (PyTorch's [N, C, d1, ...]), every option."""
    if loss == "nll_loss" and "label_smoothing" in opts:
        pytest.skip("nll_loss has no label_smoothing")
    rng = np.random.default_rng(0)
    C = shape[1] if len(shape) > 1 else shape[0]
    tshape = shape[:1] + shape[2:] if len(shape) > 1 else ()
    target = rng.integers(0, C, tshape)
    if tshape:
        target.reshape(-1)[0] = 2     # ignore_index=2 ignores at least one target
        target.reshape(-1)[-1] = 1    # and keeps at least one
    w = rng.random(C) + 0.5
    ours_fn, theirs_fn = getattr(F, loss), getattr(TF, loss)
    x = data(*shape)
    if loss == "nll_loss":
        x = np.log(np.exp(x) / np.exp(x).sum(1 if len(shape) > 1 else 0, keepdims=True))
    parity(lambda t: _ce_call(ours_fn, t, target, dict(opts, reduction=reduction),
                              w.astype(dtype), tg),
           lambda t: _ce_call(theirs_fn, t, torch.tensor(target),
                              dict(opts, reduction=reduction), torch.tensor(w.astype(dtype)),
                              torch), [x], dtype)


@pytest.mark.parametrize("opts", [{}, {"label_smoothing": 0.25}, {"weight": True},
                                  {"reduction": "sum"}, {"reduction": "none"}], ids=str)
@pytest.mark.parametrize("shape", [(4, 5), (2, 5, 3)], ids=str)
def test_cross_entropy_probability_targets(shape, opts):
    """Class-probability targets (the input's shape): gradients reach the target too."""
    rng = np.random.default_rng(0)
    p = rng.random(shape)
    p /= p.sum(1, keepdims=True)
    w = rng.random(shape[1]) + 0.5
    opts = dict(opts)
    use_w = opts.pop("weight", False)
    parity(lambda x, q: F.cross_entropy(x, q, weight=w if use_w else None, **opts),
           lambda x, q: TF.cross_entropy(x, q, weight=torch.tensor(w) if use_w else None,
                                         **opts), [data(*shape), p])


def test_cross_entropy_class_last_layout():
    """Logits [B, T, V] with targets [B, T] (the language models' layout) equal the
    flattened [B·T, V] call; [B, V, T] with targets [B, T] is PyTorch's layout."""
    x = tg.tensor(data(2, 3, 5), requires_grad=True)
    target = np.array([[0, 4, 2], [1, 3, 3]])
    flat = F.cross_entropy(x.reshape(6, 5), target.reshape(-1), reduction="none")
    np.testing.assert_allclose(F.cross_entropy(x, target, reduction="none").numpy(),
                               flat.numpy().reshape(2, 3))
    xt = tg.tensor(np.ascontiguousarray(x.numpy().transpose(0, 2, 1)))
    np.testing.assert_allclose(F.cross_entropy(xt, target).numpy(),
                               F.cross_entropy(x, target).numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match=r"cross_entropy: input \(2, 3, 5\) needs .*\(2, 5\).*"
                                         r"\(2, 3\).*got \(3, 2\)"):
        F.cross_entropy(x, target.T.copy())
    with pytest.raises(ValueError, match=r"cross_entropy: input \(2, 5, 5\) .*ambiguous"):
        F.cross_entropy(tg.randn(2, 5, 5), np.zeros((2, 5), dtype=np.int64))
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(x, target, label_smoothing=1.5)
    with pytest.raises(ValueError, match="weight must have one entry per class"):
        F.cross_entropy(x, target, weight=np.ones(4))


POINTWISE = [  # name, ours(x, y), theirs(x, y), how to make y from data
    ("mse", F.mse_loss, TF.mse_loss),
    ("l1", F.l1_loss, TF.l1_loss),
    ("huber", lambda x, y, **k: F.huber_loss(x, y, delta=0.7, **k),
     lambda x, y, **k: TF.huber_loss(x, y, delta=0.7, **k)),
    ("smooth_l1", lambda x, y, **k: F.smooth_l1_loss(x, y, beta=0.5, **k),
     lambda x, y, **k: TF.smooth_l1_loss(x, y, beta=0.5, **k)),
    ("bce_logits", F.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits),
    ("bce_logits-pos_weight",
     lambda x, y, **k: F.binary_cross_entropy_with_logits(
         x, y, pos_weight=tg.tensor(np.linspace(0.5, 2, 6).astype(x.dtype)), **k),
     lambda x, y, **k: TF.binary_cross_entropy_with_logits(
         x, y, pos_weight=torch.tensor(np.linspace(0.5, 2, 6)).to(x.dtype), **k)),
    ("bce", lambda x, y, **k: F.binary_cross_entropy(x.sigmoid(), y, **k),
     lambda x, y, **k: TF.binary_cross_entropy(x.sigmoid(), y, **k)),
    ("bce-weight", lambda x, y, **k: F.binary_cross_entropy(
        x.sigmoid(), y, weight=tg.tensor(np.linspace(0.5, 2, 6).astype(x.dtype)), **k),
     lambda x, y, **k: TF.binary_cross_entropy(
        x.sigmoid(), y, weight=torch.tensor(np.linspace(0.5, 2, 6)).to(x.dtype), **k)),
    ("kl_div", lambda x, y, **k: F.kl_div(x.log_softmax(-1), y.softmax(-1), **k),
     lambda x, y, **k: TF.kl_div(x.log_softmax(-1), y.softmax(-1), **k)),
    ("kl_div-log_target", lambda x, y, **k: F.kl_div(x.log_softmax(-1), y.log_softmax(-1),
                                                      log_target=True, **k),
     lambda x, y, **k: TF.kl_div(x.log_softmax(-1), y.log_softmax(-1), log_target=True, **k)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name,ours,theirs", POINTWISE, ids=[p[0] for p in POINTWISE])
def test_pointwise_loss_parity(name, ours, theirs, reduction, dtype):
    x, y = data(4, 6), data(4, 6, seed=1)
    if name.startswith("bce"):
        y = (np.random.default_rng(2).random((4, 6)) > 0.5) * 1.0
    parity(lambda a, b: ours(a, b, reduction=reduction),
           lambda a, b: theirs(a, b, reduction=reduction), [x, y], dtype)


def test_kl_div_batchmean_and_zero_targets():
    x, y = data(3, 4), np.array([[0.5, 0.5, 0, 0], [1, 0, 0, 0], [0.25] * 4])
    parity(lambda a, b: F.kl_div(a.log_softmax(-1), b, reduction="batchmean"),
           lambda a, b: TF.kl_div(a.log_softmax(-1), b, reduction="batchmean"), [x, y],
           grad_mask=[True, False])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cosine_similarity_and_normalize(dtype):
    a, b = data(3, 5, 2), data(3, 5, 2, seed=1)
    parity(lambda x, y: F.cosine_similarity(x, y), lambda x, y: TF.cosine_similarity(x, y),
           [a, b], dtype)
    parity(lambda x, y: F.cosine_similarity(x, y, dim=-1),
           lambda x, y: TF.cosine_similarity(x, y, dim=-1), [a, b], dtype)
    parity(lambda x: F.normalize(x), lambda x: TF.normalize(x), [a], dtype)
    parity(lambda x: F.normalize(x, p=3, dim=-1), lambda x: TF.normalize(x, p=3, dim=-1), [a],
           dtype)


def test_loss_modules():
    x, y = data(4, 5), np.array([0, 4, 2, 1])
    w = np.linspace(0.5, 1.5, 5)
    for ours, theirs in [
        (nn.CrossEntropyLoss(weight=w, label_smoothing=0.1),
         torch.nn.CrossEntropyLoss(weight=torch.tensor(w), label_smoothing=0.1)),
        (nn.NLLLoss(ignore_index=2, reduction="sum"),
         torch.nn.NLLLoss(ignore_index=2, reduction="sum"))]:
        np.testing.assert_allclose(ours(tg.tensor(x), y).numpy(),
                                   theirs(torch.tensor(x), torch.tensor(y)).numpy(), rtol=1e-12)
    z = data(4, 5, seed=3)
    for ours, theirs in [(nn.MSELoss(), torch.nn.MSELoss()), (nn.L1Loss(), torch.nn.L1Loss()),
                         (nn.HuberLoss(delta=0.5), torch.nn.HuberLoss(delta=0.5)),
                         (nn.SmoothL1Loss(beta=0.5), torch.nn.SmoothL1Loss(beta=0.5)),
                         (nn.BCEWithLogitsLoss(), torch.nn.BCEWithLogitsLoss()),
                         (nn.CosineSimilarity(), torch.nn.CosineSimilarity())]:
        np.testing.assert_allclose(ours(tg.tensor(x), tg.tensor(z)).numpy(),
                                   theirs(torch.tensor(x), torch.tensor(z)).numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="MSELoss: unknown reduction"):
        nn.MSELoss(reduction="avg")


# ---- init -------------------------------------------------------------------------------
def _std_and_bound(fill, shape):
    t = fill(nn.Parameter(np.zeros(shape, np.float32)))
    return float(t.numpy().std()), float(np.abs(t.numpy()).max())


@pytest.mark.parametrize("shape", [(300, 200), (64, 32, 3, 3), (40, 60, 5)], ids=str)
@pytest.mark.parametrize("name,kw", [("kaiming_uniform_", {}), ("kaiming_normal_", {}),
                                     ("kaiming_uniform_", {"a": 5 ** 0.5}),
                                     ("kaiming_normal_", {"mode": "fan_out",
                                                          "nonlinearity": "relu"}),
                                     ("xavier_uniform_", {"gain": 2.0}),
                                     ("xavier_normal_", {}),
                                     ("trunc_normal_", {"std": 0.5, "a": -0.6, "b": 0.9})],
                         ids=str)
def test_init_distributions_equal_torchs(name, kw, shape):
    """The same distribution as torch.nn.init's (std and support, from 10⁴+ draws each):
    so the fan computations and gains agree."""
    ours = _std_and_bound(lambda t: getattr(nn.init, name)(t, **kw), shape)
    theirs_t = getattr(torch.nn.init, name)(torch.empty(shape), **kw)
    theirs = float(theirs_t.std()), float(theirs_t.abs().max())
    assert ours[0] == pytest.approx(theirs[0], rel=0.05)
    assert ours[1] <= theirs[1] * 1.3 + 1e-6 and ours[1] >= theirs[1] * 0.7
    if name == "trunc_normal_":
        t = nn.init.trunc_normal_(nn.Parameter(np.zeros(shape, np.float32)), **kw).numpy()
        assert t.min() >= -0.6 and t.max() <= 0.9


def test_calculate_gain_and_default_layer_init():
    for nl, p in [("relu", None), ("tanh", None), ("leaky_relu", 0.2), ("selu", None),
                  ("sigmoid", None), ("conv2d", None)]:
        assert nn.init.calculate_gain(nl, p) == pytest.approx(torch.nn.init.calculate_gain(nl, p))
    tg.manual_seed(0)
    lin = nn.Linear(50, 400)
    bound = 1 / 50 ** 0.5         # PyTorch's Linear: weight and bias U(±1/√in_features)
    w = lin.weight.numpy()
    assert np.abs(w).max() <= bound and w.std() == pytest.approx(bound / 3 ** 0.5, rel=0.05)
    assert np.abs(lin.bias.numpy()).max() <= bound
    with pytest.raises(ValueError, match="fan in and fan out"):
        nn.init.xavier_uniform_(nn.Parameter(np.zeros(3, np.float32)))


# ---- padding ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode,pads", [
    ("constant", (1, 2)), ("constant", (2, 0, 1, 3)), ("constant", (1, 1, 0, 2, 1, 0)),
    ("constant", (-1, 2, 1, -1)), ("reflect", (2, 1)), ("reflect", (3, 2, 1, 3)),
    ("replicate", (2, 3)), ("replicate", (1, 4, 2, 0)), ("circular", (2, 1)),
    ("circular", (4, 3, 1, 2))], ids=str)
def test_pad_parity(mode, pads, dtype):
    # torch pads 2 sizes of a non-constant mode only on 2-D / 3-D inputs (tinygen: any)
    x = data(2, 3, 5) if mode != "constant" and len(pads) == 2 else data(2, 3, 4, 5)
    value = 0.5 if mode == "constant" else 0.0
    kw = {"value": value} if mode == "constant" else {}
    parity(lambda t: F.pad(t, pads, mode, **kw), lambda t: TF.pad(t, pads, mode, **kw),
           [x], dtype)


def test_pad_errors():
    with pytest.raises(ValueError, match="pad: reflect padding"):
        F.pad(tg.randn(2, 3), (3, 0), "reflect")
    with pytest.raises(ValueError, match="pad: needs an even number"):
        F.pad(tg.randn(2, 3), (1,))
    with pytest.raises(ValueError, match="pad: mode must be"):
        F.pad(tg.randn(2, 3), (1, 1), "wrap")

"""Optimizers (gradient clipping and learning-rate schedules: test_clip_grad_and_schedule.py).

Each optimizer is checked step for step against a hand-written NumPy version of its update
(always) and against torch.optim (where PyTorch is installed)."""

import numpy as np
import pytest
from optim_cases import CONFIGS, SHAPES, STEPS, grads_for, initial_values, make, step

import tinygen as tg
from tinygen import nn, optim


# ---- NumPy references of the update formulas ----------------------------------------------
def reference(name, values, steps):
    """The parameters after `steps` updates, written out from the papers / PyTorch docs."""
    _, _, o = CONFIGS[name]
    xs = [v.copy() for v in values]
    state = [{} for _ in xs]
    for t in range(1, steps + 1):
        for x, g, s in zip(xs, grads_for(t - 1), state):
            if name.startswith("sgd"):
                mu, damp, wd = o.get("momentum", 0), o.get("dampening", 0), o.get(
                    "weight_decay", 0)
                g = g + wd * x
                if mu:
                    s["buf"] = g.copy() if t == 1 else mu * s["buf"] + (1 - damp) * g
                    g = g + mu * s["buf"] if o.get("nesterov") else s["buf"]
                x -= o["lr"] * g
            else:  # Adam (L2 in the gradient) or AdamW (decoupled decay)
                lr, (b1, b2), eps = o["lr"], o.get("betas", (0.9, 0.999)), o.get("eps", 1e-8)
                wd = o.get("weight_decay", 0.01 if name.startswith("adamw") else 0)
                if name.startswith("adamw"):
                    x *= 1 - lr * wd
                else:
                    g = g + wd * x
                s["m"] = b1 * s.get("m", 0) + (1 - b1) * g
                s["v"] = b2 * s.get("v", 0) + (1 - b2) * g * g
                m_hat, v_hat = s["m"] / (1 - b1 ** t), s["v"] / (1 - b2 ** t)
                x -= lr * m_hat / (np.sqrt(v_hat) + eps)
    return xs


@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_numpy_reference(name):
    cls, _, options = CONFIGS[name]
    params, opt = make(cls, options)
    for k in range(STEPS):
        step(params, opt, k)
        for p, want in zip(params, reference(name, initial_values(), k + 1)):
            np.testing.assert_allclose(p.numpy(), want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_torch_step_for_step(name):
    torch = pytest.importorskip("torch")
    cls, torch_name, options = CONFIGS[name]
    params, opt = make(cls, options)
    tparams = [torch.tensor(v, requires_grad=True) for v in initial_values()]
    topt = getattr(torch.optim, torch_name)(tparams, **options)
    for k in range(STEPS):
        step(params, opt, k)
        for tp, g in zip(tparams, grads_for(k)):
            tp.grad = torch.tensor(g)
        topt.step()
        for p, tp in zip(params, tparams):
            np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_in_place_and_float32(name, device):
    cls, _, options = CONFIGS[name]
    params, opt = make(cls, options, dtype=np.float32, device=device)
    arrays = [p.data for p in params]
    for k in range(3):
        step(params, opt, k)
    for p, arr, want in zip(params, arrays, reference(name, initial_values(), 3)):
        assert p.data is arr  # updated in place: no new array per step
        assert p.dtype == np.float32 and p.device == device
        np.testing.assert_allclose(p.numpy(), want, rtol=1e-4, atol=1e-5)
    for s in opt.state.values():
        for v in s.values():
            assert not hasattr(v, "dtype") or v.dtype == np.float32


def test_params_without_grad_are_skipped():
    params, opt = make(optim.AdamW, {"lr": 0.1})
    before = [p.numpy().copy() for p in params]
    params[0].grad = tg.tensor(np.ones(SHAPES[0]))
    opt.step()
    np.testing.assert_array_equal(params[1].numpy(), before[1])  # no grad: untouched, no decay
    assert not np.array_equal(params[0].numpy(), before[0])


def test_zero_grad():
    params, opt = make(optim.SGD, {"lr": 0.1})
    step(params, opt, 0)
    opt.zero_grad()
    assert all(p.grad is None for p in params)


# ---- weight decay -------------------------------------------------------------------------
def test_adamw_decay_is_decoupled():
    """With a zero gradient Adam's update is 0, so AdamW only shrinks x by lr·wd·x."""
    lr, wd = 0.1, 0.3
    params, opt = make(optim.AdamW, {"lr": lr, "weight_decay": wd})
    before = [p.numpy().copy() for p in params]
    for p in params:
        p.grad = tg.zeros(*p.shape, dtype=np.float64)
    opt.step()
    for p, x in zip(params, before):
        np.testing.assert_array_equal(p.numpy(), x * (1 - lr * wd))
    # Adam's weight_decay is an L2 term in the gradient instead: the step is lr-sized
    params, opt = make(optim.Adam, {"lr": lr, "weight_decay": wd})
    for p in params:
        p.grad = tg.zeros(*p.shape, dtype=np.float64)
    opt.step()
    for p, x in zip(params, before):
        np.testing.assert_allclose(p.numpy(), x - lr * np.sign(x), atol=1e-6)  # up to eps


@pytest.mark.parametrize("cls", [optim.AdamW, optim.Adam, optim.SGD])
def test_group_with_zero_weight_decay_is_not_decayed(cls):
    values = initial_values()
    decay, no_decay = (nn.Parameter(v.copy()) for v in values)
    opt = cls([{"params": [decay]}, {"params": [no_decay], "weight_decay": 0.0}],
              lr=0.1, weight_decay=0.5)
    assert opt.param_groups[0]["weight_decay"] == 0.5
    assert opt.param_groups[1]["weight_decay"] == 0.0 and opt.param_groups[1]["lr"] == 0.1
    for p in (decay, no_decay):
        p.grad = tg.zeros(*p.shape, dtype=np.float64)
    opt.step()
    np.testing.assert_array_equal(no_decay.numpy(), values[1])
    assert not np.any(decay.numpy() == values[0])  # the other group was decayed


def test_groups_have_their_own_lr():
    a, b = (nn.Parameter(v) for v in initial_values())
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    a.grad, b.grad = tg.ones(*a.shape, dtype=np.float64), tg.ones(*b.shape, dtype=np.float64)
    opt.step()
    np.testing.assert_allclose(a.numpy(), initial_values()[0] - 0.1)
    np.testing.assert_allclose(b.numpy(), initial_values()[1] - 0.5)


# ---- state_dict: resuming continues identically --------------------------------------------
RESUMABLE = ["sgd-momentum", "sgd-nesterov", "adam-weight_decay", "adamw", "adamw-betas"]


def _straight(name, steps=6):
    cls, _, options = CONFIGS[name]
    params, opt = make(cls, options, dtype=np.float32)
    for k in range(steps):
        step(params, opt, k)
    return params


def _resumed(name, through=None):
    """3 steps, a checkpoint (optionally through a file), fresh objects, 3 more steps."""
    cls, _, options = CONFIGS[name]
    params, opt = make(cls, options, dtype=np.float32)
    for k in range(3):
        step(params, opt, k)
    checkpoint = {"params": [p.numpy().copy() for p in params], "optimizer": opt.state_dict(),
                  "step": 3}
    if through is not None:
        tg.save(checkpoint, through)
        checkpoint = tg.load(through)
    # fresh parameters and optimizer, built with another lr: the state_dict brings it back
    params, opt = make(cls, dict(options, lr=123.0), values=checkpoint["params"],
                       dtype=np.float32)
    opt.load_state_dict(checkpoint["optimizer"])
    want = cls([nn.Parameter(np.zeros(1))], **options).param_groups[0]
    assert {k: v for k, v in opt.param_groups[0].items() if k != "params"} == {
        k: v for k, v in want.items() if k != "params"}  # lr 123.0 replaced, betas a tuple
    for k in range(checkpoint["step"], 6):
        step(params, opt, k)
    assert all(p.dtype == np.float32 for p in params)
    return params


@pytest.mark.parametrize("name", RESUMABLE)
def test_state_dict_round_trip_resumes_identically(name):
    for p, q in zip(_resumed(name), _straight(name)):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


@pytest.mark.parametrize("name", RESUMABLE)
def test_state_dict_survives_save_and_load(name, tmp_path):
    for p, q in zip(_resumed(name, through=tmp_path / "ckpt.safetensors"), _straight(name)):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_state_dict_is_not_changed_by_later_steps_once_loaded():
    """Loading copies the state: stepping the source afterwards does not leak into it."""
    params, opt = make(optim.Adam, {"lr": 0.01})
    step(params, opt, 0)
    _, opt2 = make(optim.Adam, {"lr": 0.01})
    opt2.load_state_dict(opt.state_dict())
    saved = {k: v.copy() for k, v in next(iter(opt2.state.values())).items()
             if hasattr(v, "copy")}
    step(params, opt, 1)
    for k, v in next(iter(opt2.state.values())).items():
        if k in saved:
            np.testing.assert_array_equal(v, saved[k])


def test_state_dict_layout_is_pytorchs():
    params, opt = make(optim.Adam, {"lr": 0.01})
    step(params, opt, 0)
    sd = opt.state_dict()
    assert sorted(sd["state"]) == [0, 1]
    assert sorted(sd["state"][0]) == ["exp_avg", "exp_avg_sq", "step"]
    assert sd["state"][0]["step"] == 1 and sd["state"][1]["exp_avg"].shape == SHAPES[1]
    assert sd["param_groups"] == [{"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8,
                                       "weight_decay": 0.0, "params": [0, 1]}]


def test_load_state_dict_rejects_other_groups():
    params, opt = make(optim.SGD, {"lr": 0.1, "momentum": 0.9})
    step(params, opt, 0)
    _, other = make(optim.SGD, {"lr": 0.1, "momentum": 0.9}, values=initial_values()[:1])
    with pytest.raises(ValueError, match="groups"):
        other.load_state_dict(opt.state_dict())


# ---- bad input ----------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [optim.SGD, optim.Adam, optim.AdamW])
def test_empty_parameter_list(cls):
    with pytest.raises(ValueError, match="empty"):
        cls([])
    with pytest.raises(ValueError, match="empty"):
        cls(iter([]))


def test_unknown_group_option():
    p = nn.Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="momentum"):
        optim.Adam([{"params": [p], "momentum": 0.9}])


@pytest.mark.parametrize("betas", [(1.0, 0.999), (0.9, 1.0), (-0.1, 0.9), (0.9, -0.5)])
def test_bad_betas(betas):
    with pytest.raises(ValueError, match="betas"):
        optim.AdamW([nn.Parameter(np.zeros(2))], betas=betas)


def test_params_must_require_grad():
    with pytest.raises(TypeError, match="require grad"):
        optim.SGD([tg.zeros(3)])
    with pytest.raises(TypeError, match="require grad"):
        optim.Adam([{"params": [nn.Parameter(np.zeros(2), requires_grad=False)]}])
    with pytest.raises(TypeError, match="require grad"):
        optim.SGD([np.zeros(3)])


def test_nesterov_needs_momentum():
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([nn.Parameter(np.zeros(2))], nesterov=True)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([nn.Parameter(np.zeros(2))], momentum=0.9, dampening=0.1, nesterov=True)


def test_single_tensor_instead_of_a_list_is_an_error():
    with pytest.raises(TypeError):
        optim.SGD(nn.Parameter(np.zeros((3, 2))), lr=0.1)


def test_parameter_in_two_groups_is_an_error():
    p = nn.Parameter(np.zeros(2))
    with pytest.raises(ValueError):
        optim.SGD([{"params": [p]}, {"params": [p], "lr": 0.5}], lr=0.1)


def test_optimizers_take_plain_leaf_tensors():
    """A plain tensor (not an nn.Parameter) stays out of the flat buffers and still trains."""
    for cls in (optim.SGD, optim.Adam, optim.AdamW):
        w = tg.tensor([1.0, 2.0], requires_grad=True)
        lin = nn.Linear(2, 1)
        opt = cls([w, *lin.parameters()], lr=0.1)
        before = w.numpy().copy()
        lin(w * w).sum().backward()
        opt.step()
        assert not np.allclose(w.numpy(), before), cls.__name__
        assert w.data.base is None or w.data.base is not opt.flat_buffers[0].data


def test_zero_grad_set_to_none_false_is_one_fill_per_flat_buffer():
    lin = nn.Linear(3, 2)
    opt = optim.AdamW(lin.parameters(), lr=0.1)
    x = tg.ones(4, 3)
    lin(x).sum().backward()
    first = [p.grad.numpy().copy() for p in lin.parameters()]
    opt.zero_grad(set_to_none=False)
    buf = opt.flat_buffers[0]
    assert not buf.grad.any() and all(p.grad.data is g for p, g in
                                      zip(buf.params, buf.grad_views))
    lin(x).sum().backward()                      # accumulates onto the zeros, in place
    for p, g in zip(lin.parameters(), first):
        np.testing.assert_allclose(p.grad.numpy(), g)
    opt.zero_grad()                              # PyTorch's default: None
    assert all(p.grad is None for p in lin.parameters())

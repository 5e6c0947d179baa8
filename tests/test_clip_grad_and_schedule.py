"""clip_grad_norm_ (scaling, float32 in place, non-finite norms, against torch.nn.utils) and
the warmup-cosine learning-rate schedule (its values, the groups' lrs, its state_dict)."""

import itertools
import math

import numpy as np
import pytest
from optim_cases import grads_for, initial_values, make

import tinygen as tg
from tinygen import nn, optim
from tinygen.optim.lr_scheduler import WarmupCosine, warmup_cosine


# ---- gradient clipping --------------------------------------------------------------------
def _with_grads(grads):
    params = [nn.Parameter(tg.tensor(np.zeros_like(g))) for g in grads]
    for p, g in zip(params, grads):
        p.grad = tg.tensor(g.copy())
    return params


def test_clip_grad_norm_scales_to_max_norm():
    grads = [g * 10 for g in grads_for(0)]
    total = math.sqrt(sum((g ** 2).sum() for g in grads))
    params = _with_grads(grads)
    norm = optim.clip_grad_norm_(params, max_norm=1.0)
    assert isinstance(norm, float)
    assert norm == pytest.approx(total, rel=1e-12)  # the norm before clipping
    clipped = math.sqrt(sum((p.grad.numpy() ** 2).sum() for p in params))
    assert clipped == pytest.approx(1.0, rel=1e-5)
    for p, g in zip(params, grads):  # one common scale: the direction is kept
        np.testing.assert_allclose(p.grad.numpy(), g / total, rtol=1e-5)


def test_clip_grad_norm_leaves_small_grads_alone():
    grads = [g * 0.01 for g in grads_for(0)]
    params = _with_grads(grads)
    arrays = [p.grad.data for p in params]
    optim.clip_grad_norm_(params, max_norm=1.0)
    for p, g, arr in zip(params, grads, arrays):
        assert p.grad.data is arr
        np.testing.assert_array_equal(p.grad.numpy(), g)


def test_clip_grad_norm_float32_in_place():
    params = [nn.Parameter(np.zeros(4, np.float32))]
    params[0].grad = tg.tensor(np.full(4, 3.0, np.float32))
    arr = params[0].grad.data
    assert optim.clip_grad_norm_(params, 1.5) == pytest.approx(6.0)
    assert params[0].grad.data is arr and arr.dtype == np.float32
    np.testing.assert_allclose(arr, 0.75, rtol=1e-5)


def test_clip_grad_norm_skips_params_without_grad():
    params = _with_grads(grads_for(0))
    params.append(nn.Parameter(np.zeros(3)))
    assert optim.clip_grad_norm_(params, 1.0) > 1.0
    assert optim.clip_grad_norm_([nn.Parameter(np.zeros(3))], 1.0) == 0.0


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_clip_grad_norm_raises_on_non_finite(bad):
    grads = grads_for(0)
    grads[1][2] = bad
    with pytest.raises(FloatingPointError, match="norm"):
        optim.clip_grad_norm_(_with_grads(grads), 1.0)


@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(max_norm):
    torch = pytest.importorskip("torch")
    grads = [g * 3 for g in grads_for(1)]
    params = _with_grads(grads)
    tparams = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for tp, g in zip(tparams, grads):
        tp.grad = torch.tensor(g)
    norm = optim.clip_grad_norm_(params, max_norm)
    tnorm = torch.nn.utils.clip_grad_norm_(tparams, max_norm)
    assert norm == pytest.approx(tnorm.item(), rel=1e-12)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-12)


def test_clip_grad_norm_accepts_a_single_tensor():
    (p,) = _with_grads([np.full(4, 3.0)])
    assert optim.clip_grad_norm_(p, 1.0) == pytest.approx(6.0)
    np.testing.assert_allclose(p.grad.numpy(), 0.5, rtol=1e-5)


# ---- learning-rate schedule ---------------------------------------------------------------
def test_warmup_cosine_values():
    lr = {"max_lr": 1.0, "min_lr": 0.1, "warmup_iters": 10, "decay_iters": 110}
    assert warmup_cosine(0, **lr) == pytest.approx(1 / 11)  # nanoGPT: (it+1)/(warmup+1)
    assert warmup_cosine(9, **lr) == pytest.approx(10 / 11)
    assert warmup_cosine(10, **lr) == pytest.approx(1.0)     # warmup ends at the peak
    assert warmup_cosine(60, **lr) == pytest.approx(0.55)    # halfway: (max + min) / 2
    assert warmup_cosine(35, **lr) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 4)))
    assert warmup_cosine(110, **lr) == pytest.approx(0.1)
    assert warmup_cosine(10_000, **lr) == 0.1
    values = [warmup_cosine(s, **lr) for s in range(120)]
    assert all(a < b for a, b in itertools.pairwise(values[:11]))  # rising to the peak
    assert all(a >= b for a, b in itertools.pairwise(values[10:]))  # then never rising
    assert warmup_cosine(0, 1.0, 0.1, 0, 10) == 1.0                    # no warmup


def test_warmup_cosine_scheduler_sets_group_lrs():
    a, b = (nn.Parameter(v) for v in initial_values())
    opt = optim.AdamW([{"params": [a]}, {"params": [b], "lr": 0.5e-3}], lr=1e-3)
    sched = WarmupCosine(opt, warmup_iters=4, decay_iters=20, min_lr_ratio=0.1)
    for s in range(25):
        got = sched.step()
        want = warmup_cosine(s, 1e-3, 1e-4, 4, 20)
        assert got == pytest.approx(want) and opt.param_groups[0]["lr"] == pytest.approx(want)
        assert opt.param_groups[1]["lr"] == pytest.approx(want / 2)  # the ratio is kept
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4)


def test_warmup_cosine_scheduler_state_dict():
    def fresh():
        _, opt = make(optim.SGD, {"lr": 0.2})
        return opt, WarmupCosine(opt, warmup_iters=3, decay_iters=10)

    _, sched = fresh()
    lrs = [sched.step() for _ in range(8)]
    _, sched2 = fresh()
    for _ in range(5):
        sched2.step()
    state = sched2.state_dict()
    opt3, sched3 = fresh()
    sched3.load_state_dict(state)
    assert [sched3.step() for _ in range(3)] == lrs[5:]
    assert opt3.param_groups[0]["lr"] == lrs[-1]

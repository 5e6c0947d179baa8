"""The checks of the tour's exercises: check_N(module) raises AssertionError (or whatever
the unfinished stub raises) unless the module's answer is right. Each compares the
reader's code with tinygen's own, or with a property the idea must have."""

import numpy as np

import tinygen as tg
from tinygen import autograd, nn
from tinygen.gradcheck import gradcheck
from tinygen.models import clip, gan, vae
from tinygen.nn import functional as F
from tinygen.rl import grpo, ppo, rlhf


def _rng(seed=0):
    return np.random.default_rng(seed)


def _f64(*shape, seed=0, requires_grad=True):
    return tg.tensor(_rng(seed).standard_normal(shape), requires_grad=requires_grad)


def _close(got, want, what, atol=1e-6, rtol=1e-5):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    assert np.allclose(got, want, atol=atol, rtol=rtol), (
        f"{what}: got {np.round(got.ravel()[:4], 5)}..., expected "
        f"{np.round(want.ravel()[:4], 5)}... (max difference "
        f"{np.abs(got - want).max():.3g})")


def check_1(m):
    x = _f64(3, 4)
    _close(m.Tanh.apply(x).data, np.tanh(x.data), "Tanh forward")
    gradcheck(lambda t: m.Tanh.apply(t), [x])


def check_2(m):
    a, b = _f64(3), _f64(3, seed=1)
    c = a * b
    root = (c + a).sum()                      # a is used twice: it must come after c
    order = list(m.topological_order(root))
    want = list(autograd._topological_order(root))
    assert {id(t) for t in order} == {id(t) for t in want}, (
        f"topological_order: {len(order)} tensors, expected the {len(want)} that need grad")
    assert len(order) == len(want), "topological_order: a tensor appears twice"
    pos = {id(t): i for i, t in enumerate(order)}
    for t in order:
        for parent in (t._ctx.inputs if t._ctx is not None else ()):
            if parent.requires_grad:
                assert pos[id(parent)] > pos[id(t)], (
                    "topological_order: a tensor comes before one that was computed from it")
    x = tg.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(5000):                     # deeper than Python's recursion limit
        y = y * 1.0
    assert len(list(m.topological_order(y))) == 5001, "topological_order: the deep chain"


def check_3(m):
    rng = _rng()
    for gshape, shape in [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 4), (3, 1)),
                          ((2, 3, 4), (1, 4)), ((2, 3, 4), (3, 1)), ((5,), ()),
                          ((2, 1, 4), (1, 1, 1))]:
        grad = rng.standard_normal(gshape)
        got = m.unbroadcast(grad, shape)
        _close(got, autograd.unbroadcast(grad, shape), f"unbroadcast {gshape} -> {shape}")


def check_4(m):
    x = _f64(2, 3, 8)
    _close(m.LayerNorm.apply(x).data, F.layer_norm(x, (8,)).data, "LayerNorm forward")
    gradcheck(lambda t: m.LayerNorm.apply(t), [x])


def check_5(m):
    tg.manual_seed(0)
    layer = m.Affine(5, 3)
    names = [n for n, _ in layer.named_parameters()]
    assert sorted(names) == ["bias", "weight"], f"Affine: parameters {names}, expected " \
        "weight and bias (assign nn.Parameter objects to self)"
    assert layer.weight.shape == (3, 5) and layer.bias.shape == (3,), (
        f"Affine: weight {layer.weight.shape} and bias {layer.bias.shape}, expected (3, 5) "
        "and (3,)")
    bound = 1 / np.sqrt(5)
    w = np.concatenate([layer.weight.numpy().ravel(), layer.bias.numpy().ravel()])
    assert np.all(np.abs(w) <= bound) and np.std(w) > 0.1 * bound, \
        "Affine: initialise uniformly in ±1/sqrt(in_features)"
    x = tg.tensor(_rng().standard_normal((4, 5)).astype(np.float32))
    y = layer(x)
    _close(y.data, F.linear(x, layer.weight, layer.bias).data, "Affine forward", atol=1e-5)
    y.sum().backward()
    assert layer.weight.grad is not None and layer.bias.grad is not None, \
        "Affine: no gradient reached the parameters"


def check_6(m):
    p = nn.Parameter(_rng().standard_normal(6))
    x = p.data.copy()
    mom, vel = np.zeros(6), np.zeros(6)
    opt = tg.optim.Adam([p], lr=0.1, betas=(0.8, 0.9), eps=1e-6)
    for t in range(1, 6):
        g = np.sin(np.arange(6) * t) + 0.5 * x     # a different gradient each step
        p.grad = tg.tensor(g)
        opt.step()
        m.adam_update(x, g, mom, vel, t, lr=0.1, betas=(0.8, 0.9), eps=1e-6)
        _close(x, p.data, f"adam_update, step {t}", atol=1e-9, rtol=1e-7)


def check_7(m):
    q, k, v = (_f64(2, 2, 5, 4, seed=s) for s in range(3))
    for causal in (True, False):
        want = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        _close(m.attention(q, k, v, is_causal=causal).data, want.data,
               f"attention(is_causal={causal})")
    gradcheck(lambda a, b, c: m.attention(a, b, c, is_causal=False), [q, k, v])


def check_8(m):
    probs = np.array([[0.5, 0.2, 0.15, 0.1, 0.05], [0.05, 0.6, 0.05, 0.25, 0.05],
                      [0.2, 0.2, 0.2, 0.2, 0.2]])
    want = {0.1: [[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [.2, .2, .2, .2, .2]],
            0.6: [[.5 / .7, .2 / .7, 0, 0, 0], [0, 1, 0, 0, 0], [.2, .2, .2, .2, .2]],
            0.8: [[.5 / .85, .2 / .85, .15 / .85, 0, 0], [0, .6 / .85, 0, .25 / .85, 0],
                  [.2, .2, .2, .2, .2]]}
    for top_p, expected in want.items():
        _close(m.top_p_filter(probs.copy(), top_p), expected, f"top_p_filter(top_p={top_p})")


def check_9(m):
    mu, logvar = _f64(4, 3), _f64(4, 3, seed=1)
    eps = _rng(2).standard_normal((4, 3))
    z = m.reparameterize(mu, logvar, eps)
    _close(z.data, vae.reparameterize(mu, logvar, eps).data, "reparameterize")
    gradcheck(lambda a, b: m.reparameterize(a, b, eps), [mu, logvar])


def check_10(m):
    logits = _f64(8, 1)
    _close(m.g_loss(logits).data, gan.g_loss_nonsaturating(logits).data, "g_loss")
    rejected = tg.tensor(np.full((4, 1), -10.0), requires_grad=True)  # D is sure: fake
    m.g_loss(rejected).backward()
    g = float(np.abs(rejected.grad.data).mean()) * 4
    assert g > 0.5, f"g_loss: gradient {g:.2g} per sample where D rejects the samples " \
        "(logit -10): the loss saturates there"


def check_11(m):
    rng = _rng()
    old = rng.standard_normal(32) * 0.1 - 1.0
    new = tg.tensor(old + rng.standard_normal(32) * 0.4, requires_grad=True)
    adv = rng.standard_normal(32)
    for clip_coef in (0.1, 0.2, 0.3):
        got = m.policy_loss(new, old, adv, clip_coef)
        want = ppo.policy_loss(new, old, adv, clip_coef)
        _close(got.data, want.data, f"policy_loss(clip_coef={clip_coef})")
    new.grad = None
    m.policy_loss(new, old, adv, 0.2).backward()
    ratio = np.exp(new.data - old)
    clipped = ((ratio > 1.2) & (adv > 0)) | ((ratio < 0.8) & (adv < 0))
    assert clipped.any() and np.all(new.grad.data[clipped] == 0), \
        "policy_loss: samples whose ratio left the clip range must get no gradient"


def check_12(m):
    mine, ref = m.AdaptiveKLController(0.2, 6.0, 10000), rlhf.AdaptiveKLController(0.2, 6.0,
                                                                                    10000)
    for kl in (12.0, 8.0, 6.5, 3.0, 0.1, 6.0):
        got, want = mine.update(kl, 256), ref.update(kl, 256)
        _close(got, want, f"AdaptiveKLController.update(current_kl={kl})", rtol=1e-12)
        _close(mine.value, want, "AdaptiveKLController.value after update", rtol=1e-12)


def check_13(m):
    img = clip.normalize(_f64(5, 4))
    txt = clip.normalize(_f64(5, 4, seed=1))
    scale = tg.tensor(np.log(1 / 0.07), requires_grad=True)
    _close(m.clip_loss(img, txt, scale).data, clip.clip_loss(img, txt, scale).data,
           "clip_loss")
    a, b = _f64(5, 4), _f64(5, 4, seed=1)
    gradcheck(lambda x, y: m.clip_loss(clip.normalize(x), clip.normalize(y), scale), [a, b])


def check_14(m):
    z_e = _f64(3, 4)
    z_q = tg.tensor(np.round(z_e.data))       # a stand-in for the nearest code
    out = m.straight_through(z_e, z_q)
    _close(out.data, z_q.data, "straight_through value")
    assert out.requires_grad, "straight_through: the result has no graph back to z_e"
    w = _rng(1).standard_normal((3, 4))
    (out * tg.tensor(w)).sum().backward()
    assert z_e.grad is not None, "straight_through: no gradient reached z_e"
    _close(z_e.grad.data, w, "straight_through gradient (should be the identity)")


def check_15(m):
    rewards = np.array([[1.0, 0.0, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5], [0.0, 0.2, 0.9, 0.1]])
    _close(m.group_advantages(rewards.copy()), grpo.group_advantages(rewards).numpy(),
           "group_advantages", atol=1e-5)

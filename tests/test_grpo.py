"""pass@k (Chen et al. 2021), GRPO's advantages, KL estimate and loss, and the demo's smoke run."""

import json
import math
import os
import subprocess
import sys
from itertools import combinations

import numpy as np
import pytest

import tinygen as tg
from tinygen.models.gpt import GPT, GPTConfig
from tinygen.rl import ppo
from tinygen.rl.grpo import (
    GRPOConfig,
    group_advantages,
    grpo_loss,
    grpo_update,
    kl_k3,
    sample_groups,
    sequence_weights,
)
from tinygen.rl.pass_at_k import mean_pass_at_k, pass_at_k

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("n,c,k", [(10, 0, 1), (10, 3, 1), (10, 3, 5), (10, 8, 3), (7, 7, 7),
                                   (20, 1, 10), (5, 2, 2)])
def test_pass_at_k_is_the_exact_combinatorial_expectation(n, c, k):
    # the chance that a random k-subset of the n samples holds at least one of the c passes
    subsets = list(combinations([1] * c + [0] * (n - c), k))
    exact = np.mean([any(s) for s in subsets]) if len(subsets) < 200_000 \
        else 1 - math.comb(n - c, k) / math.comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(exact)
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))


def test_pass_at_k_edges_and_mean():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)          # pass@1 is c / n
    assert pass_at_k(10, 0, 10) == 0.0 and pass_at_k(10, 1, 10) == 1.0
    assert pass_at_k(200, 100, 100) == pytest.approx(1 - math.comb(100, 100) / math.comb(200, 100))
    assert mean_pass_at_k([10, 10], [0, 10], 1) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="pass_at_k"):
        pass_at_k(5, 6, 1)
    with pytest.raises(ValueError, match="pass_at_k"):
        pass_at_k(5, 1, 6)


def test_group_advantages():
    r = np.array([[0.0, 1.0, 1.0, 0.0], [0.5, 0.5, 0.5, 0.5], [1.0, 0.0, 0.0, 0.0]])
    a = group_advantages(r)
    assert isinstance(a, tg.Tensor) and a.dtype == np.float32
    a = a.numpy()
    assert a.shape == (3, 4)
    np.testing.assert_allclose(a.mean(axis=1), 0, atol=1e-6)
    np.testing.assert_allclose(a[0], [-0.866, 0.866, 0.866, -0.866], atol=1e-3)  # std ddof=1
    np.testing.assert_array_equal(a[1], 0)                    # equal rewards: no signal
    assert a[2, 0] > 0 > a[2, 1]
    with pytest.raises(ValueError, match="group_advantages"):
        group_advantages(np.ones(4))


def test_kl_k3_and_weights():
    logp = np.log(np.array([0.5, 0.2, 0.9]))
    ref = np.log(np.array([0.5, 0.4, 0.3]))
    k3 = kl_k3(logp, ref).numpy()
    assert k3[0] == pytest.approx(0) and (k3 >= 0).all()
    assert k3[1] == pytest.approx(2.0 - math.log(2.0) - 1)
    t = kl_k3(tg.tensor(logp), tg.tensor(ref))
    np.testing.assert_allclose(t.numpy(), k3, rtol=1e-6)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], np.float32)
    w = sequence_weights(mask).numpy()
    np.testing.assert_allclose(w, [[0.25, 0.25, 0, 0], [0.125] * 4])
    assert w.sum() == pytest.approx(1)


def test_grpo_loss_matches_equation_3():
    rng = np.random.default_rng(0)
    B, R, clip, beta = 4, 5, 0.2, 0.1
    mask = np.ones((B, R), np.float32)
    mask[0, 3:] = 0
    mask[2, 1:] = 0
    new = rng.normal(-1.5, 0.3, (B, R)).astype(np.float32)
    old = new + rng.normal(0, 0.3, (B, R)).astype(np.float32)
    ref = new + rng.normal(0, 0.3, (B, R)).astype(np.float32)
    adv = np.array([1.0, -0.5, 2.0, -1.0], np.float32)
    new_t = tg.tensor(new, requires_grad=True)
    loss, pg, kl = grpo_loss(new_t, old, ref, adv, mask, clip, beta)
    # eq. 3 written out with loops: mean over responses of the mean over their tokens
    ratio = np.exp(new - old)
    surrogate = np.minimum(ratio * adv[:, None], np.clip(ratio, 1 - clip, 1 + clip) * adv[:, None])
    k3 = np.exp(ref - new) - (ref - new) - 1
    per_resp_pg = [-(surrogate[i][mask[i] > 0]).mean() for i in range(B)]
    per_resp_kl = [k3[i][mask[i] > 0].mean() for i in range(B)]
    assert pg.item() == pytest.approx(np.mean(per_resp_pg), rel=1e-4)
    assert kl.item() == pytest.approx(np.mean(per_resp_kl), rel=1e-4)
    assert loss.item() == pytest.approx(np.mean(per_resp_pg) + beta * np.mean(per_resp_kl),
                                        rel=1e-4)
    loss.backward()
    assert np.all(new_t.grad.numpy()[mask == 0] == 0)        # padding gets no gradient
    # with ratio 1 and beta 0 the gradient is -A w per token (the policy-gradient form)
    new_t2 = tg.tensor(new, requires_grad=True)
    loss2, _, _ = grpo_loss(new_t2, new, ref, adv, mask, clip, 0.0)
    loss2.backward()
    np.testing.assert_allclose(new_t2.grad.numpy(), -adv[:, None] * sequence_weights(mask).numpy(),
                               rtol=1e-5, atol=1e-7)
    assert ppo.policy_loss is not None                        # the surrogate is PPO's


def test_grpo_update_raises_the_rewarded_tokens_probability():
    """One prompt, G samples; reward 1 when the first response token is id 1. After a few
    updates the policy emits it more often: the advantages push the right way."""
    tg.manual_seed(0)
    gpt = GPT(GPTConfig(block_size=8, vocab_size=4, n_layer=1, n_head=2, n_embd=16))
    ref = GPT(gpt.config)
    ref.load_state_dict(gpt.state_dict())
    optimizer = gpt.configure_optimizers(0.0, 1e-2, (0.9, 0.99))
    cfg = GRPOConfig(group_size=16, update_epochs=2, num_minibatches=2, beta=0.0)
    prompt = np.zeros((2, 2), np.int64)
    rates = []
    for _ in range(12):
        tokens, mask = sample_groups(gpt, prompt, cfg.group_size, 3, eos_id=3)
        assert isinstance(tokens, tg.Tensor) and isinstance(mask, tg.Tensor)
        rewards = (tokens.numpy()[:, 2] == 1).astype(np.float32).reshape(2, cfg.group_size)
        rates.append(rewards.mean())
        logs = grpo_update(gpt, ref, optimizer, tokens, mask,
                           group_advantages(rewards).reshape(-1), cfg)
        assert set(logs) >= {"loss", "kl", "approx_kl", "clipfrac"}
        assert all(isinstance(v, float) for v in logs.values())
    assert np.mean(rates[-3:]) > np.mean(rates[:3]) + 0.3


def test_demo_smoke(tmp_path):
    out = subprocess.run([sys.executable, "demos/code.py", "--smoke", "--out_dir", str(tmp_path)],
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in ("sft_pass_at_1", "sft_pass_at_10", "grpo_pass_at_1", "grpo_kl",
                "repair_fix_rate", "seconds"):
        assert key in summary
    bad = subprocess.run([sys.executable, "demos/code.py", "--num_samples", "3"], cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
                         timeout=120, check=False)
    assert bad.returncode != 0 and "num_samples" in bad.stderr


def test_demo_grpo_on_unseen_compositions(tmp_path):
    """--grpo_prompts unseen and --eval_every run; a flag given with --smoke wins over the
    smoke default (2 rollouts, not 1), and each mid-run evaluation lands in grpo_log.json."""
    cmd = [sys.executable, "demos/code.py", "--smoke", "--grpo_prompts", "unseen",
           "--grpo_iters", "3", "--eval_every", "1", "--out_dir", str(tmp_path)]
    out = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    log = json.loads((tmp_path / "grpo_log.json").read_text())
    assert [row["iter"] for row in log] == [1, 2, 3]
    assert all("held_out_pass_at_1" in row for row in log[:2]) and "held_out_pass_at_1" \
        not in log[2]   # the last rollout is followed by the full evaluation instead
    bad = subprocess.run([sys.executable, "demos/code.py", "--grpo_prompts", "test"], cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
                         timeout=120, check=False)
    assert bad.returncode != 0 and "grpo_prompts" in bad.stderr

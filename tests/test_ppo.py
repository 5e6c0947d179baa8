"""PPO: GAE, the clipped losses and diagnostics against hand-worked numbers, the actor-critic,
and a short training run that must learn (CartPole itself: test_cartpole.py)."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import EMULATED_CUDA

import tinygen as tg
from tinygen import backend
from tinygen.nn.init import orthogonal_
from tinygen.rl.cartpole import CartPole
from tinygen.rl.ppo import (
    Agent,
    PPOConfig,
    RolloutStorage,
    approx_kl,
    clipfrac,
    collect_rollout,
    compute_gae,
    entropy,
    explained_variance,
    log_prob,
    normalize_advantages,
    policy_loss,
    ppo_update,
    sample_categorical,
    value_loss,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---- GAE ----------------------------------------------------------------------------------
def test_gae_by_hand_with_an_episode_end_in_the_middle():
    # Two envs, T = 3, γ = 0.9, λ = 0.8.
    # env 0: dones[2] = 1, so step 1 ended an episode: nothing flows from t = 2 back to t = 1.
    #   t=2: δ = 1 + 0.9·0.2 - 0.3 = 0.88                    A = 0.88
    #   t=1: δ = 1 + 0 - 0.4       = 0.6  (episode ended)    A = 0.6
    #   t=0: δ = 1 + 0.9·0.4 - 0.5 = 0.86                    A = 0.86 + 0.72·0.6 = 1.292
    # env 1: next_done = 1, so the last step ended an episode: next_value is not used.
    #   t=2: δ = 1 - 0 = 1   A = 1;   t=1: A = 0 + 0.72·1 = 0.72;   t=0: A = 0.72·0.72 = 0.5184
    rewards = np.array([[1, 0], [1, 0], [1, 1]], dtype=np.float32)
    values = np.array([[0.5, 0], [0.4, 0], [0.3, 0]], dtype=np.float32)
    dones = np.array([[0, 0], [0, 0], [1, 0]], dtype=np.float32)
    next_value = np.array([0.2, 1.0], dtype=np.float32)
    next_done = np.array([0, 1], dtype=np.float32)
    advantages, returns = compute_gae(rewards, values, dones, next_value, next_done,
                                      gamma=0.9, gae_lambda=0.8)
    assert isinstance(advantages, tg.Tensor) and isinstance(returns, tg.Tensor)
    expected = np.array([[1.292, 0.5184], [0.6, 0.72], [0.88, 1.0]])
    np.testing.assert_allclose(advantages.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(returns.numpy(), expected + values, rtol=1e-6)
    assert advantages.dtype == np.float32 and returns.dtype == np.float32


def test_gae_stays_on_the_device_of_the_values(device):
    values = tg.tensor(np.array([[0.5], [0.4]], np.float32), device=device)
    advantages, returns = compute_gae(np.ones((2, 1), np.float32), values,
                                      np.zeros((2, 1), np.float32), np.zeros(1, np.float32),
                                      np.ones(1, np.float32), gamma=0.5, gae_lambda=1.0)
    assert advantages.device == returns.device == device
    # t=1: δ = 1 - 0.4 = 0.6 (the episode ends); t=0: δ = 1 + 0.5·0.4 - 0.5 = 0.7, A = 1
    np.testing.assert_allclose(advantages.numpy(), [[1.0], [0.6]], rtol=1e-6)


def test_gae_with_lambda_1_is_discounted_return_minus_value():
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(5, 1)).astype(np.float32)
    values = rng.normal(size=(5, 1)).astype(np.float32)
    zeros = np.zeros((5, 1), dtype=np.float32)
    _, returns = compute_gae(rewards, values, zeros, np.array([2.0], np.float32),
                             np.zeros(1, np.float32), gamma=0.5, gae_lambda=1.0)
    discounted = sum(0.5 ** k * rewards[k, 0] for k in range(5)) + 0.5 ** 5 * 2.0
    assert returns[0, 0].item() == pytest.approx(discounted, rel=1e-5)


# ---- losses -------------------------------------------------------------------------------
def test_policy_loss_by_hand(device):
    # ratio r = [1.5, 0.5, 1.1, 0.5], advantages A = [1, 1, -2, -1], ε = 0.2:
    #   -A r       = [-1.5, -0.5, 2.2, 0.5]
    #   -A clip(r) = [-1.2, -0.8, 2.2, 0.8]
    #   max        = [-1.2, -0.5, 2.2, 0.8] -> mean 0.325
    # Gradient w.r.t. new_logprob (dr/dlogp = r): -A r / 4 where the unclipped term is the
    # max, 0 where the clipped one is: [0, -0.125, 0.55, 0].
    ratio = np.array([1.5, 0.5, 1.1, 0.5])
    new_logprob = tg.tensor(np.log(ratio), device=device, requires_grad=True)
    old_logprob = np.zeros(4, dtype=np.float32)
    advantages = np.array([1, 1, -2, -1], dtype=np.float32)
    loss = policy_loss(new_logprob, old_logprob, advantages, clip_coef=0.2)
    assert loss.item() == pytest.approx(0.325, rel=1e-6)
    loss.backward()
    np.testing.assert_allclose(new_logprob.grad.numpy(), [0, -0.125, 0.55, 0], atol=1e-6)


def test_value_loss_by_hand(device):
    # new V = [1, 2, 0], old V = [0.5, 1.5, 0.5], returns = [2, 1, 1], ε = 0.2
    #   unclipped (V - R)²          = [1, 1, 1]
    #   V clipped to old ± 0.2      = [0.7, 1.7, 0.3];  (Vclip - R)² = [1.69, 0.49, 0.49]
    #   0.5 · mean(max)             = 0.5 · (1.69 + 1 + 1) / 3 = 0.615
    # Gradient: sample 0 takes the clipped branch (V outside old ± ε): 0; the others
    # 0.5 · 2 (V - R) / 3 = [+1/3, -1/3].
    new_value = tg.tensor([1.0, 2.0, 0.0], device=device, requires_grad=True)
    old_value = np.array([0.5, 1.5, 0.5], dtype=np.float32)
    returns = np.array([2.0, 1.0, 1.0], dtype=np.float32)
    loss = value_loss(new_value, old_value, returns, clip_coef=0.2)
    assert loss.item() == pytest.approx(0.615, rel=1e-6)
    loss.backward()
    np.testing.assert_allclose(new_value.grad.numpy(), [0, 1 / 3, -1 / 3], atol=1e-6)
    unclipped = value_loss(new_value, old_value, returns, clip_coef=0.2, clip_vloss=False)
    assert unclipped.item() == pytest.approx(0.5, rel=1e-6)


def test_normalize_advantages():
    a = np.array([1.0, 2.0, 3.0, 6.0], dtype=np.float32)
    n = normalize_advantages(a).numpy()
    assert n.mean() == pytest.approx(0, abs=1e-6)
    assert n.std(ddof=1) == pytest.approx(1, rel=1e-5)  # torch.std's unbiased estimate
    # with a mask: the statistics of the real entries only, padding stays 0
    padded = np.array([[1.0, 2.0, 0.0], [3.0, 6.0, 9.0]], dtype=np.float32)
    mask = np.array([[1, 1, 0], [1, 1, 0]], dtype=np.float32)
    m = normalize_advantages(padded, mask=mask).numpy()
    np.testing.assert_allclose(m[:, :2].reshape(-1), n, rtol=1e-5)
    assert m[0, 2] == m[1, 2] == 0


# ---- diagnostics --------------------------------------------------------------------------
def test_entropy_and_log_prob(device):
    logits = tg.tensor(np.log([[0.25, 0.25, 0.25, 0.25], [0.9, 0.1, 1e-30, 1e-30]]),
                       device=device)
    h = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    np.testing.assert_allclose(entropy(logits).numpy(), [math.log(4), h], rtol=1e-5)
    lp = log_prob(logits, np.array([3, 1]))
    np.testing.assert_allclose(lp.numpy(), [math.log(0.25), math.log(0.1)], rtol=1e-5)


def test_approx_kl_clipfrac_explained_variance():
    # (r - 1) - log r for log r = [0, log 2]: [0, 1 - log 2] -> mean (1 - log 2) / 2
    assert approx_kl(np.array([0.0, math.log(2)])) == pytest.approx((1 - math.log(2)) / 2)
    assert approx_kl(np.zeros(3)) == 0.0
    # |r - 1| > 0.2 for 1.3, 0.7 and 0.79: three of five
    assert clipfrac(np.array([1.0, 1.1, 1.3, 0.7, 0.79]), 0.2) == pytest.approx(0.6)
    returns = np.array([1.0, 2.0, 3.0])
    assert explained_variance(returns, returns) == pytest.approx(1.0)
    assert explained_variance(np.full(3, 2.0), returns) == pytest.approx(0.0)
    # residual [0, 0, -1]: Var 2/9 against Var(returns) 2/3 -> 1 - 1/3
    assert explained_variance(np.array([1.0, 2.0, 4.0]), returns) == pytest.approx(2 / 3)
    assert math.isnan(explained_variance(np.zeros(3), np.ones(3)))


# ---- the actor-critic ---------------------------------------------------------------------
def test_orthogonal_init_and_agent_heads():
    tg.manual_seed(0)
    w = orthogonal_(tg.zeros(64, 4), gain=2.0).numpy()
    np.testing.assert_allclose(w.T @ w, 4 * np.eye(4), atol=1e-5)   # orthonormal columns
    agent = Agent(obs_dim=4, num_actions=2)
    head = agent.actor[4].weight.numpy()
    np.testing.assert_allclose(head @ head.T, 1e-4 * np.eye(2), atol=1e-9)  # gain 0.01
    assert not agent.actor[4].bias.numpy().any()
    obs = tg.randn(5, 4)
    action, logprob, ent, value = agent.get_action_and_value(obs)
    assert action.shape == logprob.shape == ent.shape == value.shape == (5,)
    assert set(action.tolist()) <= {0, 1}
    # the first policy is nearly uniform (gain 0.01 on the last layer)
    np.testing.assert_allclose(logprob.numpy(), math.log(0.5), atol=0.05)
    _, again, _, _ = agent.get_action_and_value(obs, action)
    np.testing.assert_array_equal(again.numpy(), logprob.numpy())


def test_sample_categorical_frequencies():
    tg.manual_seed(0)
    logits = tg.tensor(np.log(np.tile([0.1, 0.6, 0.3], (20_000, 1))))
    counts = np.bincount(sample_categorical(logits).numpy(), minlength=3) / 20_000
    np.testing.assert_allclose(counts, [0.1, 0.6, 0.3], atol=0.01)


# ---- learning -----------------------------------------------------------------------------
def test_short_ppo_run_learns_cartpole():
    """~25k steps of PPO with the demo's algorithm: returns must clearly rise. Minibatches
    of 64 keep every matmul under OpenBLAS's threading threshold, so the test stays fast
    on a busy machine."""
    tg.manual_seed(0)
    num_envs, num_steps, gamma, gae_lambda = 4, 128, 0.99, 0.95
    cfg = PPOConfig(num_minibatches=8)
    envs = CartPole(num_envs, seed=0)
    agent = Agent(CartPole.obs_dim, CartPole.num_actions)
    optimizer = tg.optim.Adam(agent.parameters(), lr=1e-3, eps=1e-5)
    storage = RolloutStorage(num_steps, num_envs, CartPole.obs_dim)
    next_obs, next_done = envs.reset(), np.zeros(num_envs, dtype=np.float32)
    episode_returns = []
    for _iteration in range(48):
        next_obs, next_done, finished = collect_rollout(agent, envs, storage, next_obs,
                                                        next_done)
        episode_returns += finished
        with tg.no_grad():
            next_value = agent.get_value(next_obs)
        advantages, returns = compute_gae(storage.rewards, storage.values, storage.dones,
                                          next_value, next_done, gamma, gae_lambda)
        stats = ppo_update(agent, optimizer, storage.batch(advantages, returns), cfg)
    assert set(stats) == {"policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac",
                          "explained_variance"}
    assert all(math.isfinite(v) for v in stats.values())
    first, last = np.mean(episode_returns[:20]), np.mean(episode_returns[-10:])
    assert first < 40 and last > 3 * first, (first, last)


def test_demo_smoke(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "demos", "ppo_cartpole.py"),
                          "--smoke", "--seed", "3", "--out_dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary == json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 4 * 4 * 128 and summary["seed"] == 3
    assert 5 < summary["mean_return"] < 100 and summary["seconds"] > 0
    assert "explained_variance" in out.stdout


def test_update_matches_cleanrl_in_pytorch():
    """ppo_update against CleanRL's update loop written in PyTorch (benchmarks/torch_ppo.py),
    from the same weights, batch and minibatch order: after 2 epochs x 2 minibatches of
    steps (with clipping, advantage normalisation, Adam) the mean value loss agrees."""
    pytest.importorskip("torch")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))
    import torch
    import torch_ppo
    from common import copy_weights

    from tinygen.random import generator

    tg.manual_seed(1)
    agent = Agent(4, 2)
    envs = CartPole(2, seed=1)
    storage = RolloutStorage(32, 2, 4)
    next_obs, next_done, _ = collect_rollout(agent, envs, storage, envs.reset(),
                                             np.zeros(2, np.float32))
    with tg.no_grad():
        next_value = agent.get_value(next_obs)
    batch = storage.batch(*compute_gae(storage.rewards, storage.values, storage.dones,
                                       next_value, next_done, 0.99, 0.95))
    twin = copy_weights(torch_ppo.TorchAgent(4, 2), agent)
    cfg = PPOConfig(update_epochs=2, num_minibatches=2)
    tg.manual_seed(2)
    permutations = [generator("cpu").permutation(64) for _ in range(2)]
    tg.manual_seed(2)
    ours = ppo_update(agent, tg.optim.Adam(agent.parameters(), lr=1e-2, eps=1e-5), batch, cfg)
    theirs = torch_ppo.ppo_update(twin, torch.optim.Adam(twin.parameters(), lr=1e-2, eps=1e-5),
                                  {k: v.numpy() for k, v in batch.items()}, permutations, cfg)
    assert ours["value_loss"] == pytest.approx(theirs, rel=1e-4)
    for name, p in agent.named_parameters():  # the steps moved both the same way
        np.testing.assert_allclose(p.numpy(), dict(twin.named_parameters())[name].detach(),
                                   rtol=1e-3, atol=1e-5, err_msg=name)


# ---- the rollout and the update on the device ---------------------------------------------
def test_rollout_storage_and_batch_are_tensors_on_the_device(device):
    tg.manual_seed(0)
    agent = Agent(4, 2, device=device)
    envs = CartPole(3, seed=0)
    storage = RolloutStorage(5, 3, 4, device=device)
    next_obs, next_done, _ = collect_rollout(agent, envs, storage, envs.reset(),
                                             np.zeros(3, np.float32))
    assert isinstance(next_obs, tg.Tensor) and next_obs.device == next_done.device == device
    advantages, returns = compute_gae(storage.rewards, storage.values, storage.dones,
                                      agent.get_value(next_obs), next_done, 0.99, 0.95)
    batch = storage.batch(advantages, returns)
    assert all(isinstance(v, tg.Tensor) and v.device == device for v in batch.values())
    assert batch["obs"].shape == (15, 4) and batch["actions"].dtype == np.int64
    np.testing.assert_array_equal(storage.rewards.numpy(), np.ones((5, 3)))
    # the stored log-probabilities and values are the policy's on the stored observations
    _, logprob, _, value = agent.get_action_and_value(batch["obs"], batch["actions"])
    np.testing.assert_allclose(batch["logprobs"].numpy(), logprob.numpy(), rtol=1e-5)
    np.testing.assert_allclose(batch["values"].numpy(), value.numpy(), rtol=1e-5)


@pytest.mark.skipif(not EMULATED_CUDA, reason="counts syncs on the CuPy emulator")
def test_rollout_syncs_once_a_step_and_streams_from_pinned_memory():
    """#14: the CPU environments need the sampled actions (1 sync a step); everything
    else stays on the device, observations go up from pinned memory, and the update reads
    back only its diagnostics (1 sync)."""
    cp = backend.cp
    T, N = 8, 2
    tg.manual_seed(0)
    agent = Agent(4, 2, device="cuda")
    envs = CartPole(N, seed=0)
    storage = RolloutStorage(T, N, 4, device="cuda")
    optimizer = tg.optim.Adam(agent.parameters(), lr=1e-3)
    obs, done, _ = collect_rollout(agent, envs, storage, envs.reset(), np.zeros(N, np.float32))
    cp.COUNTS.reset()
    obs, done, _ = collect_rollout(agent, envs, storage, obs, done)
    assert cp.COUNTS.syncs == T
    # the observations of steps 1..T-1, then rewards and dones once: all from pinned memory;
    # the first observation is already on the device
    assert cp.COUNTS.pinned_uploads == (T - 1) + 2
    assert cp.COUNTS.uploads - cp.COUNTS.pinned_uploads <= 2   # next_obs, next_done
    cp.COUNTS.reset()
    advantages, returns = compute_gae(storage.rewards, storage.values, storage.dones,
                                      agent.get_value(obs), done, 0.99, 0.95)
    stats = ppo_update(agent, optimizer, storage.batch(advantages, returns), PPOConfig())
    assert cp.COUNTS.syncs == 1 and all(isinstance(v, float) for v in stats.values())


def test_update_reports_an_out_of_range_action_on_every_device(device):
    """The device-side bounds flag of log_prob's gather travels with the diagnostics
    (backend.read_floats): a bad action still raises, naming the op, without its own sync."""
    tg.manual_seed(0)
    agent = Agent(4, 2, device=device)
    B = 8
    batch = {"obs": np.zeros((B, 4), np.float32), "actions": np.full(B, 5),
             "logprobs": np.zeros(B, np.float32), "values": np.zeros(B, np.float32),
             "advantages": np.ones(B, np.float32), "returns": np.ones(B, np.float32)}
    with pytest.raises(IndexError, match="getitem|out of range"):
        ppo_update(agent, tg.optim.Adam(agent.parameters()), batch,
                   PPOConfig(update_epochs=1, num_minibatches=2))

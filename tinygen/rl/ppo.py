"""Proximal Policy Optimization (Schulman et al. 2017), as in CleanRL's `ppo.py`.

PPO alternates two phases. It *collects* a rollout: num_steps steps in each of num_envs
environments with the current policy, remembering what it saw, did and expected. Then it
*learns* from that batch for a few epochs of minibatch steps on a loss that stops the new
policy from moving far from the one that collected the data: the probability ratio
new/old is clipped to [1 - clip_coef, 1 + clip_coef].

Read in order: the actor-critic network (orthogonal init, the categorical policy),
the rollout, generalised advantage estimation (GAE), the losses, the diagnostics, and
`ppo_update`, which puts the losses together. `demos/ppo_cartpole.py` is the training loop.
Shapes: T = num_steps, N = num_envs, B = T * N the batch, A the number of actions.
"""

import math
from dataclasses import dataclass

import numpy as np

from tinygen import nn
from tinygen.autograd import no_grad
from tinygen.backend import (
    check_device,
    copy_to_device,
    get_array_module,
    pinned_empty,
    read_floats,
    to_device,
    to_numpy,
)
from tinygen.checks import check_nonnegative, check_positive
from tinygen.creation import as_tensor, zeros
from tinygen.optim import clip_grad_norm_
from tinygen.random import generator
from tinygen.rl.ppo_diagnostics import (  # noqa: F401  (the diagnostics, re-exported)
    _approx_kl,
    _clipfrac,
    _explained_variance,
    _mask_on,
    _mean,
    approx_kl,
    clipfrac,
    explained_variance,
)
from tinygen.tensor import Tensor, where

SQRT2 = math.sqrt(2)  # the gain for tanh hidden layers that CleanRL uses


# ---- the actor-critic network -------------------------------------------------------------
def layer_init(layer, std=SQRT2, bias_const=0.0):
    """CleanRL's init for PPO: orthogonal weights with gain `std`, constant bias."""
    nn.init.orthogonal_(layer.weight, std)
    layer.bias.data[...] = bias_const
    return layer


def log_prob(logits, action):
    """log π(action|s) under the categorical distribution softmax(logits).
    logits [B, A], action [B] integers -> [B]."""
    action = as_tensor(action, device=logits.device).data
    logp = logits.log_softmax(axis=-1)
    return logp[get_array_module(action).arange(len(action)), action]


def entropy(logits):
    """Entropy of the categorical distribution softmax(logits): -Σ p log p.
    logits [B, A] -> [B]."""
    logp = logits.log_softmax(axis=-1)
    return -(logp.exp() * logp).sum(axis=-1)


def sample_categorical(logits):
    """One action per row of logits [B, A] -> integer Tensor [B], drawn with tinygen's
    global generator by inverse CDF: the first action whose cumulative probability
    exceeds u ~ U[0, 1)."""
    xp = get_array_module(logits.data)
    probs = logits.softmax(axis=-1).data
    u = generator(logits.device).random((probs.shape[0], 1), dtype=probs.dtype)
    action = (xp.cumsum(probs, axis=-1) <= u).sum(axis=-1)
    return Tensor(xp.minimum(action, probs.shape[-1] - 1))  # rounding can leave Σ p < u


class Agent(nn.Module):
    """Separate actor and critic MLPs, two hidden layers of 64 tanh units each (CleanRL).
    The critic's last layer has gain 1, the actor's 0.01, so the first policy is almost
    uniform and the first value estimates are near 0."""

    def __init__(self, obs_dim, num_actions, hidden=64, device="cpu"):
        def linear(n_in, n_out, std=SQRT2):
            return layer_init(nn.Linear(n_in, n_out, device=device), std)

        self.critic = nn.Sequential(
            linear(obs_dim, hidden), nn.Tanh(),
            linear(hidden, hidden), nn.Tanh(),
            linear(hidden, 1, std=1.0))
        self.actor = nn.Sequential(
            linear(obs_dim, hidden), nn.Tanh(),
            linear(hidden, hidden), nn.Tanh(),
            linear(hidden, num_actions, std=0.01))

    def get_value(self, obs):
        """V(s): obs [B, obs_dim] -> [B]."""
        return self.critic(obs).reshape(-1)

    def get_action_and_value(self, obs, action=None):
        """Sample an action (or score the given one) under the policy π(·|s).
        obs [B, obs_dim] -> action [B] (an integer Tensor), log π(action|s) [B], entropy [B], V(s) [B]."""
        logits = self.actor(obs)                                   # [B, A]
        if action is None:
            action = sample_categorical(logits)
        return action, log_prob(logits, action), entropy(logits), self.get_value(obs)


# ---- the rollout ----------------------------------------------------------------------------
class RolloutStorage:
    """What one rollout saw and did, [T, N] Tensors on `device` (CleanRL keeps these buffers
    as torch tensors on the device): obs [T, N, obs_dim], actions (int64), logprobs,
    rewards, dones, values. dones[t] is 1 when obs[t] is the first observation of a new
    episode, that is, when the step before it ended an episode (CleanRL's convention)."""

    def __init__(self, num_steps, num_envs, obs_dim, device="cpu"):
        T, N = num_steps, num_envs
        self.device = check_device(device)
        self.obs = zeros(T, N, obs_dim, device=device)
        self.actions = zeros(T, N, dtype=np.int64, device=device)
        self.logprobs, self.rewards, self.dones, self.values = (
            zeros(T, N, device=device) for _ in range(4))
        # the environments' output, staged in pinned host memory on a GPU: its uploads are
        # queued without making the host wait (backend.copy_to_device)
        self._host = {k: pinned_empty(shape, np.float32, device) for k, shape in
                      (("obs", (T, N, obs_dim)), ("rewards", (T, N)), ("dones", (T, N)))}

    def batch(self, advantages, returns):
        """The rollout flattened to B = T * N samples, with its advantages and returns:
        a dict of Tensors [B, ...] (views of the storage)."""
        B = self.rewards.numel()
        return {"obs": self.obs.reshape(B, -1), "actions": self.actions.reshape(B),
                "logprobs": self.logprobs.reshape(B), "values": self.values.reshape(B),
                "advantages": as_tensor(advantages, like=self.values).reshape(B),
                "returns": as_tensor(returns, like=self.values).reshape(B)}


def _sampled_logprob(logits, action):
    """log π(action|s) of actions sample_categorical drew from logits [B, A], in range by
    construction: a one-hot product, without log_prob's bounds check (a 2nd sync a step)."""
    xp = get_array_module(action)
    logp = logits.log_softmax(axis=-1).data
    onehot = action[:, None] == xp.arange(logp.shape[-1])          # [B, A]
    return (logp * onehot).sum(axis=-1)                            # [B]


@no_grad()
def collect_rollout(agent, envs, storage, next_obs, next_done):
    """Fill `storage` with T steps of `envs` under the agent's policy.
    next_obs [N, obs_dim] and next_done [N] (Tensors, or the environment's arrays) are where
    the last rollout stopped; returns the new ones, Tensors on the agent's device, and the
    returns of the episodes that finished (a list of floats).

    On a GPU a step costs one host sync, the one the CPU environments need: reading the
    sampled actions. Observations stream to the device through pinned memory; rewards and
    dones wait on the host until the rollout ends and go up in one copy each. (A pinned row
    is written again only after a later action read, when the stream is past its copy.)"""
    device = storage.device
    T = storage.rewards.shape[0]
    host = storage._host
    obs, dones = storage.obs.data, storage.dones.data
    obs[0] = as_tensor(next_obs, device=device).data
    dones[0] = as_tensor(next_done, device=device).data
    episode_returns = []
    for step in range(T):
        x = Tensor(obs[step])
        logits = agent.actor(x)                 # get_action_and_value, less the entropy
        action = sample_categorical(logits).data
        storage.actions.data[step] = action
        storage.logprobs.data[step] = _sampled_logprob(logits, action)
        storage.values.data[step] = agent.get_value(x).data
        step_obs, reward, terminated, truncated, info = envs.step(to_numpy(action))  # 1 sync
        host["rewards"][step] = reward
        done = (terminated | truncated).astype(np.float32)
        episode_returns.extend(info["episode_returns"].tolist())
        if step + 1 < T:
            host["obs"][step + 1], host["dones"][step + 1] = step_obs, done
            copy_to_device(host["obs"][step + 1], obs[step + 1])   # queued, no wait
    copy_to_device(host["rewards"], storage.rewards.data)
    copy_to_device(host["dones"][1:], dones[1:])
    next_obs, next_done = Tensor(step_obs, device=device), Tensor(done, device=device)
    return next_obs, next_done, episode_returns


# ---- generalised advantage estimation -----------------------------------------------------
def compute_gae(rewards, values, dones, next_value, next_done, gamma, gae_lambda):
    """GAE(γ, λ) (Schulman et al. 2016). rewards, values, dones [T, N]; next_value and
    next_done [N] belong to the observation after the last step (Tensors, or arrays). Returns
    advantages and returns = advantages + values, Tensors [T, N] on the device of `values`.

        δ_t = r_t + γ V(s_{t+1}) (1 - done_{t+1}) - V(s_t)
        A_t = δ_t + γ λ (1 - done_{t+1}) A_{t+1}

    done_{t+1} means step t ended its episode (CleanRL's convention, see RolloutStorage),
    so nothing flows back across an episode boundary. It runs on the device, as CleanRL's."""
    values = as_tensor(values)
    rewards, dones, next_value, next_done = (
        as_tensor(x, like=values).data for x in (rewards, dones, next_value, next_done))
    values = values.data
    xp = get_array_module(values)
    # every term that does not depend on A_{t+1} at once, [T, N]; then the recursion
    nextnonterminal = 1.0 - xp.concatenate([dones[1:], next_done[None]])
    nextvalues = xp.concatenate([values[1:], next_value[None]])
    delta = rewards + gamma * nextvalues * nextnonterminal - values
    decay = (gamma * gae_lambda) * nextnonterminal
    advantages = delta.copy()
    for t in reversed(range(rewards.shape[0] - 1)):
        row = advantages[t]                 # a view: += writes into advantages, 2 launches
        row += decay[t] * advantages[t + 1]
    return Tensor(advantages), Tensor(advantages + values)


# ---- the losses -----------------------------------------------------------------------------
def masked_mean(x, mask=None):
    """The mean of x, or with a mask (1 on the real samples, 0 on padding; or any weights)
    the weighted mean Σ mask·x / Σ mask, as TRL's masked_mean: a token-level loss over the
    real tokens of padded responses with no data-dependent shape (no host sync)."""
    if mask is None:
        return x.mean()
    mask = as_tensor(mask, like=x)
    return (x * mask).sum() / mask.sum()


def normalize_advantages(advantages, eps=1e-8, mask=None):
    """Zero mean, unit standard deviation (ddof=1, as torch.std) over the minibatch, or over
    the entries where mask is 1 (the others become 0). A constant: a Tensor with no gradient."""
    advantages = as_tensor(advantages)
    return Tensor(_whiten(advantages.data, eps, _mask_on(mask, advantages)))


def _whiten(x, eps, mask=None):
    if mask is None:
        return (x - x.mean()) / (x.std(ddof=1) + eps)
    n, mean = mask.sum(), _mean(x, mask)
    std = get_array_module(x).sqrt((((x - mean) * mask) ** 2).sum() / (n - 1))
    return (x - mean) / (std + eps) * mask


def _maximum(a, b):
    return where(a.data >= b.data, a, b)


def policy_loss(new_logprob, old_logprob, advantages, clip_coef, mask=None):
    """The clipped surrogate objective L^CLIP (PPO paper, eq. 7), negated to be minimised:
    mean of max(-A r, -A clip(r, 1 - ε, 1 + ε)) with r = π_new(a|s) / π_old(a|s) (the
    masked mean with a mask). old_logprob and advantages are constants (Tensors, or arrays
    taken as_tensor)."""
    ratio = (new_logprob - as_tensor(old_logprob, like=new_logprob)).exp()
    advantages = as_tensor(advantages, like=new_logprob)
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * ratio.clip(1 - clip_coef, 1 + clip_coef)
    return masked_mean(_maximum(pg_loss1, pg_loss2), mask)


def value_loss(new_value, old_value, returns, clip_coef, clip_vloss=True, mask=None):
    """0.5 * mean squared error of V(s) against the returns. With clip_vloss the new value
    may not move more than clip_coef from the old one without paying the unclipped error
    (CleanRL, after OpenAI's baselines): 0.5 * mean(max(unclipped², clipped²))."""
    old_value, returns = as_tensor(old_value, like=new_value), as_tensor(returns, like=new_value)
    v_loss_unclipped = (new_value - returns) ** 2
    if not clip_vloss:
        return 0.5 * masked_mean(v_loss_unclipped, mask)
    v_clipped = old_value + (new_value - old_value).clip(-clip_coef, clip_coef)
    v_loss_clipped = (v_clipped - returns) ** 2
    return 0.5 * masked_mean(_maximum(v_loss_unclipped, v_loss_clipped), mask)


# ---- the update -----------------------------------------------------------------------------
@dataclass
class PPOConfig:
    """The update's hyperparameters (CleanRL's defaults for CartPole); a demo's config
    subclasses it (demos/ppo_cartpole.py), as RLHFConfig does."""

    update_epochs: int = 4         # passes over the batch
    num_minibatches: int = 4       # minibatches per pass
    norm_adv: bool = True          # normalise advantages per minibatch
    clip_coef: float = 0.2         # ε, for the ratio and (with clip_vloss) the value
    clip_vloss: bool = True        # clipped value loss
    vf_clip_coef: float = None     # how far a value may move before its loss is clipped
    #                                (None: clip_coef, as CleanRL)
    ent_coef: float = 0.01         # weight of the entropy bonus
    vf_coef: float = 0.5           # weight of the value loss
    max_grad_norm: float = 0.5     # global gradient-norm clipping
    target_kl: float = 0.0         # stop the epochs early past this approx_kl (0: never)

    def __post_init__(self):
        check_positive(self, "update_epochs", "num_minibatches")
        check_nonnegative(self, "clip_coef", "ent_coef", "vf_coef", "target_kl")
        check_positive(self, "max_grad_norm")
        if self.vf_clip_coef is not None:
            check_nonnegative(self, "vf_clip_coef")


def evaluate_actions(agent, mb):
    """What the update needs of the current policy on a minibatch of transitions:
    log π(a|s), the entropy and V(s), each [b]."""
    _, new_logprob, entropy, new_value = agent.get_action_and_value(mb["obs"], mb["actions"])
    return new_logprob, entropy, new_value


def ppo_update(agent, optimizer, batch, cfg, evaluate=evaluate_actions):
    """update_epochs passes over `batch` in shuffled minibatches, one optimizer step each on
    policy_loss - ent_coef * entropy + vf_coef * value_loss. Returns the diagnostics (floats):
    losses, entropy and approx_kl averaged over the minibatch steps, clipfrac over all
    samples seen, explained_variance of the rollout's values.

    `batch` maps names to [B, ...] Tensors (or arrays): "logprobs", "values", "advantages",
    "returns" and whatever `evaluate(agent, minibatch) -> (new_logprob, entropy, new_value)`
    reads ("obs" and "actions" for CartPole, RolloutStorage.batch). With a "mask" [B, R] each
    sample is a sequence of R steps (a response of R tokens, rl/rlhf.py): the per-step
    quantities are [B, R] and the losses are masked means over the steps where the mask is 1.

    On a GPU it reads back only the diagnostics, at the end (and approx_kl once an epoch
    for the early stop when target_kl is set)."""
    if not isinstance(cfg, PPOConfig):
        raise TypeError(f"ppo_update: cfg must be a PPOConfig (or a subclass such as "
                        f"RLHFConfig), got {type(cfg).__name__}")
    device = agent.parameters()[0].device
    b = {k: as_tensor(v, device=device) for k, v in batch.items()}  # Tensors [B, ...]
    B, xp = len(b["logprobs"]), get_array_module(b["logprobs"].data)
    minibatch_size = max(B // cfg.num_minibatches, 1)
    vf_clip_coef = cfg.clip_coef if cfg.vf_clip_coef is None else cfg.vf_clip_coef
    logs = {"policy_loss": [], "value_loss": [], "entropy": [], "approx_kl": [],
            "clipfrac": []}
    for _epoch in range(cfg.update_epochs):
        b_inds = to_device(generator("cpu").permutation(B), device)
        for start in range(0, B, minibatch_size):
            mb_inds = b_inds[start:start + minibatch_size]
            mb = {k: Tensor(v.data[mb_inds]) for k, v in b.items()}
            mask = mb.get("mask")
            new_logprob, ent, new_value = evaluate(agent, mb)
            mb_advantages = mb["advantages"]
            if cfg.norm_adv:
                mb_advantages = normalize_advantages(mb_advantages, mask=mask)
            pg_loss = policy_loss(new_logprob, mb["logprobs"], mb_advantages, cfg.clip_coef,
                                  mask)
            v_loss = value_loss(new_value, mb["values"], mb["returns"], vf_clip_coef,
                                cfg.clip_vloss, mask)
            entropy_loss = masked_mean(ent, mask)
            loss = pg_loss - cfg.ent_coef * entropy_loss + cfg.vf_coef * v_loss

            optimizer.zero_grad()
            loss.backward()
            clip_grad_norm_(agent.parameters(), cfg.max_grad_norm)
            optimizer.step()

            # the diagnostics stay 0-d device arrays: read once, after the last step
            logratio = new_logprob.data - mb["logprobs"].data                # no gradient
            m = None if mask is None else mask.data
            logs["policy_loss"].append(pg_loss.data)
            logs["value_loss"].append(v_loss.data)
            logs["entropy"].append(entropy_loss.data)
            logs["approx_kl"].append(_approx_kl(logratio, m))
            logs["clipfrac"].append(_clipfrac(xp.exp(logratio), cfg.clip_coef, m))
        if cfg.target_kl and float(logs["approx_kl"][-1]) > cfg.target_kl:  # a sync an epoch
            break
    mask = b["mask"].data if "mask" in b else None
    ev = _explained_variance(b["values"].data, b["returns"].data, mask)
    means = [xp.stack(v).astype(xp.float64).mean() for v in logs.values()]
    read = read_floats(xp.stack(means + [ev.astype(xp.float64)]))           # the one sync
    return dict(zip([*logs, "explained_variance"], read.tolist()))

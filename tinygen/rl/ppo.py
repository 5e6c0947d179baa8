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
from tinygen.backend import get_array_module, to_device, to_numpy
from tinygen.checks import check_nonnegative, check_positive
from tinygen.creation import as_tensor
from tinygen.optim import clip_grad_norm_
from tinygen.random import generator
from tinygen.tensor import Tensor, stack, where

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
    """What one rollout saw and did, [T, N] per quantity (NumPy arrays, on the CPU).
    dones[t] is 1 when obs[t] is the first observation of a new episode, that is, when the
    step before it ended an episode (CleanRL's convention)."""

    def __init__(self, num_steps, num_envs, obs_dim):
        T, N = num_steps, num_envs
        self.obs = np.zeros((T, N, obs_dim), dtype=np.float32)
        self.actions = np.zeros((T, N), dtype=np.int64)
        self.logprobs = np.zeros((T, N), dtype=np.float32)
        self.rewards = np.zeros((T, N), dtype=np.float32)
        self.dones = np.zeros((T, N), dtype=np.float32)
        self.values = np.zeros((T, N), dtype=np.float32)

    def batch(self, advantages, returns):
        """The rollout flattened to B = T * N samples, with its advantages and returns."""
        B = self.rewards.size
        return {"obs": self.obs.reshape(B, -1), "actions": self.actions.reshape(B),
                "logprobs": self.logprobs.reshape(B), "values": self.values.reshape(B),
                "advantages": advantages.reshape(B), "returns": returns.reshape(B)}


@no_grad()
def collect_rollout(agent, envs, storage, next_obs, next_done):
    """Fill `storage` with T steps of `envs` under the agent's policy.
    next_obs [N, obs_dim] and next_done [N] are where the last rollout stopped; returns the
    new ones and the returns of the episodes that finished (a list of floats)."""
    device = agent.parameters()[0].device
    episode_returns, logprobs, values = [], [], []  # on the device until the rollout ends
    for step in range(storage.rewards.shape[0]):
        storage.obs[step] = next_obs
        storage.dones[step] = next_done
        obs = Tensor(next_obs, device=device)
        logits = agent.actor(obs)               # get_action_and_value, less the entropy
        action = sample_categorical(logits)
        storage.actions[step] = action.numpy()  # the envs step on the host: one sync a step
        logprobs.append(log_prob(logits, action))
        values.append(agent.get_value(obs).reshape(-1))
        next_obs, reward, terminated, truncated, info = envs.step(storage.actions[step])
        storage.rewards[step] = reward
        next_done = (terminated | truncated).astype(np.float32)
        episode_returns.extend(info["episode_returns"].tolist())
    storage.logprobs[...] = stack(logprobs).numpy().reshape(storage.logprobs.shape)  # 1 sync
    storage.values[...] = stack(values).numpy().reshape(storage.values.shape)
    return next_obs, next_done, episode_returns


# ---- generalised advantage estimation -----------------------------------------------------
def compute_gae(rewards, values, dones, next_value, next_done, gamma, gae_lambda):
    """GAE(γ, λ) (Schulman et al. 2016). rewards, values, dones [T, N]; next_value and
    next_done [N] belong to the observation after the last step. Returns advantages and
    returns = advantages + values, both [T, N].

        δ_t = r_t + γ V(s_{t+1}) (1 - done_{t+1}) - V(s_t)
        A_t = δ_t + γ λ (1 - done_{t+1}) A_{t+1}

    done_{t+1} means step t ended its episode (CleanRL's convention, see RolloutStorage),
    so nothing flows back across an episode boundary."""
    rewards, values, dones, next_value, next_done = (
        as_tensor(x).numpy() for x in (rewards, values, dones, next_value, next_done))
    T = rewards.shape[0]
    advantages = np.zeros_like(rewards)
    lastgaelam = 0.0
    for t in reversed(range(T)):
        if t == T - 1:
            nextnonterminal = 1.0 - next_done
            nextvalues = next_value
        else:
            nextnonterminal = 1.0 - dones[t + 1]
            nextvalues = values[t + 1]
        delta = rewards[t] + gamma * nextvalues * nextnonterminal - values[t]
        advantages[t] = lastgaelam = delta + gamma * gae_lambda * nextnonterminal * lastgaelam
    return advantages, advantages + values


# ---- the losses -----------------------------------------------------------------------------
def normalize_advantages(advantages, eps=1e-8):
    """Zero mean, unit standard deviation (ddof=1, as torch.std) over the minibatch."""
    return (advantages - advantages.mean()) / (advantages.std(ddof=1) + eps)


def _maximum(a, b):
    return where(a.data >= b.data, a, b)


def policy_loss(new_logprob, old_logprob, advantages, clip_coef):
    """The clipped surrogate objective L^CLIP (PPO paper, eq. 7), negated to be minimised:
    mean of max(-A r, -A clip(r, 1 - ε, 1 + ε)) with r = π_new(a|s) / π_old(a|s).
    old_logprob and advantages are constants (Tensors, or arrays taken as_tensor)."""
    ratio = (new_logprob - as_tensor(old_logprob, like=new_logprob)).exp()
    advantages = as_tensor(advantages, like=new_logprob)
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * ratio.clip(1 - clip_coef, 1 + clip_coef)
    return _maximum(pg_loss1, pg_loss2).mean()


def value_loss(new_value, old_value, returns, clip_coef, clip_vloss=True):
    """0.5 * mean squared error of V(s) against the returns. With clip_vloss the new value
    may not move more than clip_coef from the old one without paying the unclipped error
    (CleanRL, after OpenAI's baselines): 0.5 * mean(max(unclipped², clipped²))."""
    old_value, returns = as_tensor(old_value, like=new_value), as_tensor(returns, like=new_value)
    v_loss_unclipped = (new_value - returns) ** 2
    if not clip_vloss:
        return 0.5 * v_loss_unclipped.mean()
    v_clipped = old_value + (new_value - old_value).clip(-clip_coef, clip_coef)
    v_loss_clipped = (v_clipped - returns) ** 2
    return 0.5 * _maximum(v_loss_unclipped, v_loss_clipped).mean()


# ---- diagnostics (floats, no gradient) ------------------------------------------------------
def approx_kl(logratio):
    """Estimate of KL(π_old ‖ π_new) from log r = log π_new - log π_old on samples of π_old:
    mean((r - 1) - log r), unbiased and never negative (Schulman, "Approximating KL
    divergence", 2020)."""
    return float(_approx_kl(as_tensor(logratio).data))


def _approx_kl(logratio):  # a 0-d array, on the device where logratio is
    return ((get_array_module(logratio).exp(logratio) - 1) - logratio).mean()


def clipfrac(ratio, clip_coef):
    """Fraction of samples whose ratio was outside [1 - clip_coef, 1 + clip_coef]."""
    return float(_clipfrac(as_tensor(ratio).data, clip_coef))


def _clipfrac(ratio, clip_coef):  # a 0-d array
    return (abs(ratio - 1.0) > clip_coef).mean()


def explained_variance(values, returns):
    """1 - Var(returns - values) / Var(returns): 1 for a perfect critic, 0 for one that
    predicts a constant, negative when worse than that; NaN when the returns are constant."""
    values, returns = as_tensor(values).numpy(), as_tensor(returns).numpy()
    var_y = np.var(returns)
    return float("nan") if var_y == 0 else float(1 - np.var(returns - values) / var_y)


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
    _, new_logprob, entropy, new_value = agent.get_action_and_value(Tensor(mb["obs"]),
                                                                    mb["actions"])
    return new_logprob, entropy, new_value


def ppo_update(agent, optimizer, batch, cfg, evaluate=evaluate_actions):
    """update_epochs passes over `batch` in shuffled minibatches, one optimizer step each on
    policy_loss - ent_coef * entropy + vf_coef * value_loss. Returns the diagnostics: losses,
    entropy and approx_kl averaged over the minibatch steps, clipfrac over all samples seen,
    explained_variance of the rollout's values.

    `batch` maps names to [B, ...] arrays or Tensors: "logprobs", "values", "advantages",
    "returns" and whatever `evaluate(agent, minibatch) -> (new_logprob, entropy, new_value)`
    reads ("obs" and "actions" for CartPole, RolloutStorage.batch). With a "mask" [B, R] each
    sample is a sequence of R steps (a response of R tokens, rl/rlhf.py): the per-step
    quantities are [B, R] and only the steps where the mask is 1 enter the losses."""
    if not isinstance(cfg, PPOConfig):
        raise TypeError(f"ppo_update: cfg must be a PPOConfig (or a subclass such as "
                        f"RLHFConfig), got {type(cfg).__name__}")
    device = agent.parameters()[0].device
    b = {k: to_device(as_tensor(v).data, device) for k, v in batch.items()}  # arrays [B, ...]
    B, xp = len(b["logprobs"]), get_array_module(b["logprobs"])
    minibatch_size = max(B // cfg.num_minibatches, 1)
    vf_clip_coef = cfg.clip_coef if cfg.vf_clip_coef is None else cfg.vf_clip_coef
    logs = {"policy_loss": [], "value_loss": [], "entropy": [], "approx_kl": [],
            "clipfrac": []}
    for _epoch in range(cfg.update_epochs):
        b_inds = to_device(generator("cpu").permutation(B), device)
        for start in range(0, B, minibatch_size):
            mb = {k: v[b_inds[start:start + minibatch_size]] for k, v in b.items()}
            new_logprob, ent, new_value = evaluate(agent, mb)
            old_logprob, old_value = mb["logprobs"], mb["values"]
            mb_advantages, mb_returns = mb["advantages"], mb["returns"]
            if "mask" in mb:  # token level: keep the real steps, [b, R] -> [N]
                real = get_array_module(mb["mask"]).nonzero(mb["mask"])
                new_logprob, ent, new_value = new_logprob[real], ent[real], new_value[real]
                old_logprob, old_value = old_logprob[real], old_value[real]
                mb_advantages, mb_returns = mb_advantages[real], mb_returns[real]
            if cfg.norm_adv:
                mb_advantages = normalize_advantages(mb_advantages)
            pg_loss = policy_loss(new_logprob, old_logprob, mb_advantages, cfg.clip_coef)
            v_loss = value_loss(new_value, old_value, mb_returns, vf_clip_coef, cfg.clip_vloss)
            entropy_loss = ent.mean()
            loss = pg_loss - cfg.ent_coef * entropy_loss + cfg.vf_coef * v_loss

            optimizer.zero_grad()
            loss.backward()
            clip_grad_norm_(agent.parameters(), cfg.max_grad_norm)
            optimizer.step()

            # the diagnostics stay 0-d device arrays: read once, after the last step
            logratio = new_logprob.data - old_logprob                    # no gradient
            logs["policy_loss"].append(pg_loss.data)
            logs["value_loss"].append(v_loss.data)
            logs["entropy"].append(entropy_loss.data)
            logs["approx_kl"].append(_approx_kl(logratio))
            logs["clipfrac"].append(_clipfrac(xp.exp(logratio), cfg.clip_coef))
        if cfg.target_kl and float(logs["approx_kl"][-1]) > cfg.target_kl:  # a sync an epoch
            break
    read = to_numpy(xp.stack([xp.stack(v).astype(xp.float64) for v in logs.values()]))
    diagnostics = {k: float(row.mean()) for k, row in zip(logs, read)}
    values, returns = b["values"], b["returns"]
    if "mask" in b:
        valid = b["mask"] > 0
        values, returns = values[valid], returns[valid]
    diagnostics["explained_variance"] = explained_variance(values, returns)
    return diagnostics

"""The PyTorch twin of tinygen.rl.ppo (CleanRL's ppo.py): the same actor-critic names and
shapes, so tinygen's weights load into it, the same rollout loop over the same NumPy
CartPole, and the same update. Used by benchmarks/ppo.py."""

import numpy as np
import torch
from torch import nn


class TorchAgent(nn.Module):
    def __init__(self, obs_dim, num_actions, hidden=64):
        super().__init__()
        self.critic = nn.Sequential(nn.Linear(obs_dim, hidden), nn.Tanh(),
                                    nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.actor = nn.Sequential(nn.Linear(obs_dim, hidden), nn.Tanh(),
                                   nn.Linear(hidden, hidden), nn.Tanh(),
                                   nn.Linear(hidden, num_actions))

    def get_action_and_value(self, obs, action=None):
        logp = self.actor(obs).log_softmax(-1)
        if action is None:
            action = torch.multinomial(logp.exp(), 1).squeeze(1)
        entropy = -(logp.exp() * logp).sum(-1)
        return (action, logp.gather(1, action[:, None]).squeeze(1), entropy,
                self.critic(obs).view(-1))


class Storage:
    """The rollout's [T, N] buffers as NumPy arrays, which torch.from_numpy shares."""

    def __init__(self, num_steps, num_envs, obs_dim):
        T, N = num_steps, num_envs
        self.obs = np.zeros((T, N, obs_dim), dtype=np.float32)
        self.actions = np.zeros((T, N), dtype=np.int64)
        self.logprobs, self.rewards, self.dones, self.values = (
            np.zeros((T, N), dtype=np.float32) for _ in range(4))


@torch.no_grad()
def rollout(agent, envs, storage, next_obs, next_done):
    """tinygen.rl.ppo.collect_rollout, with the policy in PyTorch."""
    for step in range(storage.rewards.shape[0]):
        storage.obs[step] = next_obs
        storage.dones[step] = next_done
        action, logprob, _, value = agent.get_action_and_value(torch.from_numpy(next_obs))
        storage.actions[step] = action.numpy()
        storage.logprobs[step] = logprob.numpy()
        storage.values[step] = value.numpy()
        next_obs, reward, terminated, truncated, _ = envs.step(storage.actions[step])
        storage.rewards[step] = reward
        next_done = (terminated | truncated).astype(np.float32)
    return next_obs, next_done


def ppo_update(agent, optimizer, batch, permutations, cfg):
    """tinygen.rl.ppo.ppo_update in PyTorch (CleanRL's update loop), minibatch order from
    `permutations` (one per epoch). Returns the mean value loss."""
    b = {k: torch.from_numpy(v) for k, v in batch.items()}
    B = len(batch["actions"])
    size = B // cfg.num_minibatches
    v_losses = []
    for perm in permutations[:cfg.update_epochs]:
        for start in range(0, B, size):
            mb = {k: v[perm[start:start + size]] for k, v in b.items()}
            _, new_logprob, entropy, new_value = agent.get_action_and_value(mb["obs"],
                                                                          mb["actions"])
            logratio = new_logprob - mb["logprobs"]
            ratio = logratio.exp()
            with torch.no_grad():
                approx_kl = ((ratio - 1) - logratio).mean()
                clipfrac = ((ratio - 1.0).abs() > cfg.clip_coef).float().mean()
            adv = mb["advantages"]
            if cfg.norm_adv:
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            pg_loss = torch.max(-adv * ratio,
                                -adv * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean()
            v_unclipped = (new_value - mb["returns"]) ** 2
            v_clipped = mb["values"] + (new_value - mb["values"]).clamp(-cfg.clip_coef,
                                                                        cfg.clip_coef)
            v_loss = 0.5 * torch.max(v_unclipped, (v_clipped - mb["returns"]) ** 2).mean()
            loss = pg_loss - cfg.ent_coef * entropy.mean() + cfg.vf_coef * v_loss
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(agent.parameters(), cfg.max_grad_norm)
            optimizer.step()
            v_losses.append(v_loss.item())
            pg_loss.item(), entropy.mean().item(), approx_kl.item(), clipfrac.item()
    return float(np.mean(v_losses))

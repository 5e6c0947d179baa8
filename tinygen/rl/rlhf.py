"""RLHF with PPO: fine-tune a language model against a learned reward model, held near the
supervised model by a per-token KL penalty (Ziegler et al. 2019; InstructGPT, Ouyang et al.
2022; the PPO losses are those of `ppo.py`, applied to tokens).

A response of R tokens is an episode of R steps: the state is prompt + the tokens so far,
the action is the next token. The reward of each step is

    r_t = -kl_coef * (log π(y_t|x, y_<t) - log π_ref(y_t|x, y_<t))      (every token)
        + RM(x, y)                                                       (the last token only)

so the return of a whole response is RM(x, y) - kl_coef * KL(π ‖ π_ref) estimated on it.
kl_coef is steered by the adaptive controller of Ziegler et al. toward a target KL.

Read in order: packing text into tokens, log-probabilities of whole responses in one
forward pass, the policy with its value head, rollouts, the KL-penalised rewards, the KL
controller, token-level GAE, and the PPO update.
Shapes: B responses, P prompt length, R response length, T = P + R, V vocab.
"""

from dataclasses import dataclass

import numpy as np

from tinygen import nn
from tinygen.autograd import no_grad
from tinygen.backend import get_array_module, to_device, to_numpy
from tinygen.nn import functional as F
from tinygen.optim import clip_grad_norm_
from tinygen.random import generator
from tinygen.rl import ppo
from tinygen.rl.reward_model import copy_gpt, hidden_states
from tinygen.tensor import Tensor


# ---- text <-> tokens --------------------------------------------------------------------------
def response_mask(response_ids, eos_id):
    """1.0 on the tokens of each response up to and including its first EOS, 0.0 on what a
    batched sampler generated after it. response_ids [B, R] -> [B, R] float32."""
    is_eos = np.asarray(response_ids) == eos_id
    after_eos = (np.cumsum(is_eos, axis=1) - is_eos) > 0
    return (~after_eos).astype(np.float32)


def last_index(mask, prompt_len):
    """Index in prompt + response of each row's last response token: [B, R] -> [B]."""
    return prompt_len + mask.sum(axis=1).astype(np.int64) - 1


def pack(tokenizer, prompts, responses, response_len, pad_id=0):
    """Prompt and response strings -> token ids [B, P + R] (int64) and the response mask
    [B, R], 1.0 on each response's characters. Responses longer than R are cut, shorter ones
    padded with pad_id (any id will do: the mask hides the padding, and causal attention
    keeps it from changing anything before it)."""
    rows = []
    for prompt, response in zip(prompts, responses):
        ids = tokenizer.encode(prompt) + tokenizer.encode(response)[:response_len]
        rows.append(ids + [pad_id] * (len(prompt) + response_len - len(ids)))
    tokens = np.array(rows, dtype=np.int64)
    mask = np.zeros((len(rows), response_len), dtype=np.float32)
    for i, response in enumerate(responses):
        mask[i, :min(len(response), response_len)] = 1.0
    return tokens, mask


def sft_targets(tokens, mask, prompt_len):
    """Next-token targets [B, T - 1] for supervised fine-tuning on the responses only: the
    prompt positions (and padding) are -1, which GPT.forward's cross-entropy ignores."""
    targets = tokens[:, 1:].copy()
    targets[:, :prompt_len - 1] = -1
    targets[:, prompt_len - 1:][mask == 0] = -1
    return targets


# ---- log-probabilities of whole responses, one forward pass -------------------------------
def response_logits(gpt, tokens, prompt_len):
    """The logits that predict each response token: tokens [B, T] -> [B, R, V]. Position
    P - 1 + t of the input predicts response token t, so the last input token is not needed."""
    h = hidden_states(gpt, tokens[:, :-1])                         # [B, T - 1, C]
    return gpt.lm_head(h[:, prompt_len - 1:])                      # [B, R, V]


def token_logprobs(logits, response_ids):
    """log π(y_t | x, y_<t) of the given tokens: logits [B, R, V], ids [B, R] -> [B, R].
    (The fused cross-entropy is -log softmax at the target, computed stably.)"""
    return -F.cross_entropy(logits, response_ids, reduction="none")


def response_logprobs(gpt, tokens, prompt_len):
    """Per-token log-probabilities [B, R] of the responses in tokens [B, T] under gpt."""
    return token_logprobs(response_logits(gpt, tokens, prompt_len), tokens[:, prompt_len:])


def sequence_logprob(gpt, tokens, mask, prompt_len):
    """log π(y | x) of whole responses: the masked sum over their tokens -> [B]."""
    logp = response_logprobs(gpt, tokens, prompt_len)
    return (logp * Tensor(to_device(mask, logp.device))).sum(axis=1)


# ---- the policy and its value head ----------------------------------------------------------
class PolicyWithValue(nn.Module):
    """The policy π (a copy of the SFT GPT) and a value head V reading the same hidden
    states, as TRL's AutoModelForCausalLMWithValueHead. The head starts at zero, so the
    first advantages are the plain returns (reward still to come), with no baseline yet."""

    def __init__(self, gpt):
        self.gpt = copy_gpt(gpt)
        self.v_head = nn.Linear(gpt.config.n_embd, 1, device=gpt.lm_head.weight.device)
        nn.init.zeros_(self.v_head.weight)
        nn.init.zeros_(self.v_head.bias)

    def forward(self, tokens, prompt_len):
        """tokens [B, T] -> logits [B, R, V] for each response token and the values [B, R]
        of the states that precede them."""
        h = hidden_states(self.gpt, tokens[:, :-1])[:, prompt_len - 1:]    # [B, R, C]
        return self.gpt.lm_head(h), self.v_head(h).reshape(h.shape[:2])


# ---- rollouts -------------------------------------------------------------------------------
@no_grad()
def sample_responses(gpt, prompt_ids, response_len, eos_id, temperature=1.0):
    """R sampled tokens after each prompt, batched with the KV cache (GPT.generate).
    prompt_ids [B, P] -> tokens [B, T] (NumPy) and the response mask [B, R]."""
    device = gpt.lm_head.weight.device
    tokens = to_numpy(gpt.generate(Tensor(prompt_ids, device=device), response_len,
                                   temperature=temperature))
    return tokens, response_mask(tokens[:, prompt_ids.shape[1]:], eos_id)


@no_grad()
def rollout(policy, ref_gpt, reward_model, prompt_ids, response_len, eos_id):
    """Sample responses from the policy and score them: what PPO needs, as NumPy arrays.
    Returns a dict with tokens [B, T], mask, logprobs, ref_logprobs and values [B, R]
    (the old policy's, the reference's and the value head's), and the RM scores [B]."""
    P = prompt_ids.shape[1]
    tokens, mask = sample_responses(policy.gpt, prompt_ids, response_len, eos_id)
    logits, values = policy(tokens, P)
    logprobs = token_logprobs(logits, tokens[:, P:])
    ref_logprobs = response_logprobs(ref_gpt, tokens, P)
    scores = reward_model(tokens, last_index(mask, P))
    return {"tokens": tokens, "mask": mask, "logprobs": logprobs.numpy(),
            "ref_logprobs": ref_logprobs.numpy(), "values": values.numpy(),
            "scores": scores.numpy()}


# ---- the reward: RM score at the end, KL penalty on every token ------------------------------
def kl_penalized_rewards(scores, logprobs, ref_logprobs, mask, kl_coef):
    """Per-token rewards [B, R] (Ziegler et al. 2019, eq. 2; InstructGPT eq. 2):
    -kl_coef * (log π - log π_ref) on every response token, plus the reward model's score
    [B] on the last one. Also returns the per-token KL estimates [B, R] (zero on padding);
    their sum over a response is the sampled estimate of KL(π ‖ π_ref) for it."""
    kl = (logprobs - ref_logprobs) * mask
    rewards = -kl_coef * kl
    last = mask.sum(axis=1).astype(np.int64) - 1
    rewards[np.arange(len(scores)), last] += scores
    return rewards, kl


class AdaptiveKLController:
    """Ziegler et al. 2019, section 2.2: steer kl_coef so that the KL to the reference stays
    near `target`. A proportional controller whose error is clipped to ±20%:

        e = clip((KL - target) / target, -0.2, 0.2)
        kl_coef <- kl_coef * (1 + e * n_steps / horizon)

    n_steps is the number of samples (responses) the KL was measured on."""

    def __init__(self, init_kl_coef, target, horizon):
        self.value, self.target, self.horizon = init_kl_coef, target, horizon

    def update(self, current_kl, n_steps):
        proportional_error = np.clip(current_kl / self.target - 1, -0.2, 0.2)
        self.value *= 1 + proportional_error * n_steps / self.horizon
        return self.value


# ---- advantages -----------------------------------------------------------------------------
def token_gae(rewards, values, mask, gamma, gae_lambda):
    """GAE over the tokens of each response, with `ppo.compute_gae`. That function wants
    time-major [T, N] arrays and CleanRL's `dones` (dones[t] = 1 when step t starts a new
    episode): a response is an episode that ends after its last token, so every padding
    position counts as "done" and nothing flows back from it. [B, R] in, [B, R] out."""
    B = rewards.shape[0]
    dones = 1.0 - mask
    advantages, returns = ppo.compute_gae(
        rewards.T, values.T, dones.T, next_value=np.zeros(B, np.float32),
        next_done=np.ones(B, np.float32), gamma=gamma, gae_lambda=gae_lambda)
    return advantages.T, returns.T


# ---- the PPO update -------------------------------------------------------------------------
@dataclass
class RLHFConfig:
    """PPO on tokens (defaults after Ziegler et al. 2019 and TRL, sized for a tiny model)."""

    learning_rate: float = 3e-4    # Adam step size of the policy and value head
    anneal_lr: bool = True         # (in the training loop) lr falls linearly to 0
    batch_size: int = 128          # responses per rollout
    update_epochs: int = 4         # passes over each rollout
    num_minibatches: int = 4       # minibatches of responses per pass
    gamma: float = 1.0             # no discount inside a response
    gae_lambda: float = 0.95       # λ of GAE
    clip_coef: float = 0.2         # ε of the clipped ratio
    vf_clip_coef: float = 0.2      # how far a value may move before its loss is clipped
    vf_coef: float = 0.1           # weight of the value loss (the trunk is shared)
    ent_coef: float = 0.0          # weight of an entropy bonus (the KL penalty regularises)
    max_grad_norm: float = 1.0     # global gradient-norm clipping
    init_kl_coef: float = 0.1      # first kl_coef of the adaptive controller
    kl_target: float = 1.5         # KL(π ‖ π_ref) per response the controller steers to
    kl_horizon: int = 2000         # the controller's horizon, in responses


def ppo_update(policy, optimizer, batch, cfg):
    """update_epochs passes over a rollout in minibatches of whole responses, each one
    optimizer step on  policy_loss - ent_coef * entropy + vf_coef * value_loss, the losses
    of `ppo.py` taken over the real response tokens only (padding excluded). `batch` is a
    rollout plus its "advantages" and "returns" [B, R]. Returns averaged diagnostics."""
    P = batch["tokens"].shape[1] - batch["mask"].shape[1]
    device = policy.gpt.lm_head.weight.device
    B = len(batch["tokens"])
    minibatch_size = max(B // cfg.num_minibatches, 1)
    # whiten the advantages of all real tokens once per rollout (as lm-human-preferences)
    advantages = batch["advantages"].copy()
    valid = batch["mask"] > 0
    advantages[valid] = ppo.normalize_advantages(advantages[valid])
    logs = {"policy_loss": [], "value_loss": [], "entropy": [], "approx_kl": [],
            "clipfrac": []}
    for _epoch in range(cfg.update_epochs):
        order = generator("cpu").permutation(B)
        for start in range(0, B, minibatch_size):
            mb = order[start:start + minibatch_size]
            real = np.nonzero(batch["mask"][mb])       # (rows, cols) of real tokens; x[real]: [N]
            tokens = to_device(batch["tokens"][mb], device)
            logits, values = policy(tokens, P)                     # [b, R, V], [b, R]
            new_lp = token_logprobs(logits, tokens[:, P:])[real]   # [N]
            old_lp = batch["logprobs"][mb][real]
            pg_loss = ppo.policy_loss(new_lp, old_lp, advantages[mb][real], cfg.clip_coef)
            v_loss = ppo.value_loss(values[real], batch["values"][mb][real],
                                    batch["returns"][mb][real], cfg.vf_clip_coef)
            entropy = ppo.entropy(logits[real]).mean()
            loss = pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss

            optimizer.zero_grad()
            loss.backward()
            clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
            optimizer.step()

            logratio = new_lp.data - to_device(old_lp, device)       # no gradient
            logs["policy_loss"].append(pg_loss.item())
            logs["value_loss"].append(v_loss.item())
            logs["entropy"].append(entropy.item())
            logs["approx_kl"].append(ppo.approx_kl(logratio))
            logs["clipfrac"].append(ppo.clipfrac(get_array_module(logratio).exp(logratio),
                                                 cfg.clip_coef))
    diagnostics = {k: float(np.mean(v)) for k, v in logs.items()}
    diagnostics["explained_variance"] = ppo.explained_variance(
        batch["values"][valid], batch["returns"][valid])
    return diagnostics

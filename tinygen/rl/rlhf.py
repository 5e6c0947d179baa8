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
from tinygen.backend import get_array_module
from tinygen.checks import check_nonnegative, check_positive, check_probability
from tinygen.creation import as_tensor
from tinygen.nn import functional as F
from tinygen.rl import ppo
from tinygen.rl.reward_model import copy_gpt, hidden_states
from tinygen.tensor import Tensor


# ---- text <-> tokens --------------------------------------------------------------------------
def response_mask(response_ids, eos_id):
    """1.0 on the tokens of each response up to and including its first EOS, 0.0 on what a
    batched sampler generated after it. response_ids [B, R] -> [B, R] float32, a Tensor on
    the device of the ids (computed there: the sampled tokens need not come to the host)."""
    ids = as_tensor(response_ids).data
    is_eos = (ids == eos_id).astype(np.int64)
    after_eos = (get_array_module(ids).cumsum(is_eos, axis=1) - is_eos) > 0
    return Tensor((~after_eos).astype(np.float32))


def last_index(mask, prompt_len):
    """Index in prompt + response of each row's last response token: [B, R] -> [B] int64,
    on the device of the mask."""
    mask = as_tensor(mask).data
    return Tensor(prompt_len + mask.sum(axis=1).astype(np.int64) - 1)


def pack(tokenizer, prompts, responses, response_len, pad_id=0, device="cpu"):
    """Prompt and response strings -> token ids [B, P + R] (int64) and the response mask
    [B, R], 1.0 on each response's tokens, both Tensors on `device`. Responses longer than
    R tokens are cut, shorter ones padded with pad_id (any id will do: the mask hides the
    padding, and causal attention keeps it from changing anything before it). Every prompt
    must encode to the same number of tokens P (left-pad the prompts, as rl/task.py does)."""
    prompt_ids = [tokenizer.encode(prompt) for prompt in prompts]
    if len({len(ids) for ids in prompt_ids}) > 1:
        raise ValueError(f"pack: every prompt must encode to the same number of tokens, got "
                         f"lengths {sorted({len(ids) for ids in prompt_ids})}")
    P = len(prompt_ids[0]) if prompt_ids else 0
    tokens = np.full((len(prompts), P + response_len), pad_id, dtype=np.int64)
    mask = np.zeros((len(prompts), response_len), dtype=np.float32)
    for i, (ids, response) in enumerate(zip(prompt_ids, responses)):
        response_ids = tokenizer.encode(response)[:response_len]   # lengths in tokens
        tokens[i, :P + len(response_ids)] = ids + response_ids
        mask[i, :len(response_ids)] = 1.0
    return Tensor(tokens, device=device), Tensor(mask, device=device)


def sft_targets(tokens, mask, prompt_len):
    """Next-token targets [B, T - 1] for supervised fine-tuning on the responses only: the
    prompt positions (and padding) are -1, which GPT.forward's cross-entropy ignores. A
    Tensor on the device of the tokens."""
    tokens = as_tensor(tokens)
    tokens, mask = tokens.data, as_tensor(mask, device=tokens.device).data
    xp = get_array_module(tokens)
    targets = tokens[:, 1:].copy()
    targets[:, :prompt_len - 1] = -1
    targets[:, prompt_len - 1:] = xp.where(mask == 0, -1, targets[:, prompt_len - 1:])
    return Tensor(targets)


# ---- log-probabilities of whole responses, one forward pass -------------------------------
def response_logits(gpt, tokens, prompt_len):
    """The logits that predict each response token: tokens [B, T] -> [B, R, V]. Position
    P - 1 + t of the input predicts response token t, so the last input token is not needed."""
    h = hidden_states(gpt, tokens[:, :-1])                         # [B, T - 1, C]
    return gpt.lm_head(h[:, prompt_len - 1:])                      # [B, R, V]


def token_logprobs(logits, response_ids):
    """log π(y_t | x, y_<t) of the given tokens: logits [B, R, V], ids [B, R] -> [B, R].
    (The fused cross-entropy is -log softmax at the target, computed stably.)"""
    B, R, V = logits.shape  # flattened: [B, R, V] would be ambiguous if R == V
    ids = as_tensor(response_ids, device=logits.device).reshape(-1)
    return -F.cross_entropy(logits.reshape(B * R, V), ids, reduction="none").reshape(B, R)


def response_logprobs(gpt, tokens, prompt_len):
    """Per-token log-probabilities [B, R] of the responses in tokens [B, T] under gpt."""
    return token_logprobs(response_logits(gpt, tokens, prompt_len), tokens[:, prompt_len:])


def sequence_logprob(gpt, tokens, mask, prompt_len):
    """log π(y | x) of whole responses: the masked sum over their tokens -> [B]."""
    logp = response_logprobs(gpt, tokens, prompt_len)
    return (logp * as_tensor(mask, like=logp)).sum(axis=1)


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
    prompt_ids [B, P] -> tokens [B, T] and the response mask [B, R], Tensors on the model's
    device."""
    device = gpt.lm_head.weight.device
    P = as_tensor(prompt_ids).shape[1]
    tokens = gpt.generate(as_tensor(prompt_ids, device=device), response_len,
                          temperature=temperature)
    return tokens, response_mask(tokens[:, P:], eos_id)


@no_grad()
def rollout(policy, ref_gpt, reward_model, prompt_ids, response_len, eos_id):
    """Sample responses from the policy and score them: what PPO needs, a dict of Tensors on
    the policy's device: tokens [B, T], mask, logprobs, ref_logprobs and values [B, R] (the
    old policy's, the reference's and the value head's), and the RM scores [B]. The sampled
    tokens stay on the device: the mask and the three scoring passes read them there."""
    P = as_tensor(prompt_ids).shape[1]
    tokens, mask = sample_responses(policy.gpt, prompt_ids, response_len, eos_id)
    logits, values = policy(tokens, P)
    logprobs = token_logprobs(logits, tokens[:, P:])
    ref_logprobs = response_logprobs(ref_gpt, tokens, P)
    scores = reward_model(tokens, last_index(mask, P))
    return {"tokens": tokens, "mask": mask, "logprobs": logprobs,
            "ref_logprobs": ref_logprobs, "values": values, "scores": scores}


# ---- the reward: RM score at the end, KL penalty on every token ------------------------------
def kl_penalized_rewards(scores, logprobs, ref_logprobs, mask, kl_coef):
    """Per-token rewards [B, R] (Ziegler et al. 2019, eq. 2; InstructGPT eq. 2):
    -kl_coef * (log π - log π_ref) on every response token, plus the reward model's score
    [B] on the last one. Also returns the per-token KL estimates [B, R] (zero on padding);
    their sum over a response is the sampled estimate of KL(π ‖ π_ref) for it. Tensors in
    (or arrays), Tensors out on the device of logprobs, no gradient."""
    logprobs = as_tensor(logprobs).detach()
    scores, ref_logprobs, mask = (as_tensor(x, like=logprobs).data
                                  for x in (scores, ref_logprobs, mask))
    xp = get_array_module(mask)
    kl = (logprobs.data - ref_logprobs) * mask
    last = mask.sum(axis=1).astype(np.int64) - 1                               # [B]
    at_last = last[:, None] == xp.arange(mask.shape[1])                        # [B, R]
    rewards = -kl_coef * kl + scores[:, None] * at_last
    return Tensor(rewards), Tensor(kl)


class AdaptiveKLController:
    """Ziegler et al. 2019, section 2.2: steer kl_coef so that the KL to the reference stays
    near `target`. A proportional controller whose error is clipped to ±20%:

        e = clip((KL - target) / target, -0.2, 0.2)
        kl_coef <- kl_coef * (1 + e * n_steps / horizon)

    n_steps is the number of samples (responses) the KL was measured on."""

    def __init__(self, init_kl_coef, target, horizon):
        self.value, self.target, self.horizon = init_kl_coef, target, horizon

    def update(self, current_kl, n_steps):
        """current_kl: a float or a 0-d Tensor (read here: the coefficient is a float)."""
        current_kl = float(as_tensor(current_kl).item())
        proportional_error = np.clip(current_kl / self.target - 1, -0.2, 0.2)
        self.value *= 1 + proportional_error * n_steps / self.horizon
        return self.value


# ---- advantages -----------------------------------------------------------------------------
def token_gae(rewards, values, mask, gamma, gae_lambda):
    """GAE over the tokens of each response, with `ppo.compute_gae`. That function wants
    time-major [T, N] inputs and CleanRL's `dones` (dones[t] = 1 when step t starts a new
    episode): a response is an episode that ends after its last token, so every padding
    position counts as "done" and nothing flows back from it. [B, R] in, Tensors [B, R] out,
    on the device of the values."""
    values = as_tensor(values)
    rewards, mask = as_tensor(rewards, like=values), as_tensor(mask, like=values)
    xp = get_array_module(values.data)
    B = values.shape[0]
    advantages, returns = ppo.compute_gae(
        rewards.T, values.T, 1.0 - mask.T, next_value=xp.zeros(B, values.dtype),
        next_done=xp.ones(B, values.dtype), gamma=gamma, gae_lambda=gae_lambda)
    return advantages.T, returns.T


# ---- the PPO update -------------------------------------------------------------------------
@dataclass
class RLHFConfig(ppo.PPOConfig):
    """PPO on tokens (defaults after Ziegler et al. 2019 and TRL, sized for a tiny model):
    the update's fields of PPOConfig with other defaults, and the rollout's."""

    learning_rate: float = 3e-4    # Adam step size of the policy and value head
    anneal_lr: bool = True         # (in the training loop) lr falls linearly to 0
    batch_size: int = 128          # responses per rollout
    update_epochs: int = 4         # passes over each rollout
    num_minibatches: int = 4       # minibatches of responses per pass
    norm_adv: bool = False         # (advantages are whitened once per rollout instead)
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

    def __post_init__(self):
        super().__post_init__()
        check_positive(self, "batch_size", "kl_target", "kl_horizon")
        check_nonnegative(self, "learning_rate", "init_kl_coef")
        check_probability(self, "gamma", "gae_lambda", closed=True)


def evaluate_tokens(policy, mb):
    """log π(y_t | x, y_<t), the entropy and the value of every response token of a
    minibatch of rollouts (tokens [b, T], mask [b, R]) -> three [b, R] Tensors."""
    tokens = mb["tokens"]
    P = tokens.shape[1] - mb["mask"].shape[1]
    logits, values = policy(tokens, P)                                 # [b, R, V], [b, R]
    return token_logprobs(logits, tokens[:, P:]), ppo.entropy(logits), values


def ppo_update(policy, optimizer, batch, cfg):
    """`ppo.ppo_update` on tokens: minibatches of whole responses, the losses over their
    real tokens only (the mask excludes padding). `batch` is a rollout plus its
    "advantages" and "returns" [B, R]; they are whitened once over all real tokens of the
    rollout (as lm-human-preferences), not per minibatch. Returns averaged diagnostics."""
    if not isinstance(cfg, RLHFConfig):
        raise TypeError(f"rlhf.ppo_update: cfg must be an RLHFConfig, got {type(cfg).__name__}")
    advantages = ppo.normalize_advantages(batch["advantages"], mask=batch["mask"])
    return ppo.ppo_update(policy, optimizer, {**batch, "advantages": advantages}, cfg,
                          evaluate=evaluate_tokens)

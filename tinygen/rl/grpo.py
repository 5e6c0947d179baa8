"""Group Relative Policy Optimization (GRPO; Shao et al. 2024, DeepSeekMath, section 4.1).

PPO without a value network: for each prompt q, sample a group of G outputs o_1..o_G from
the old policy, score them (here: the fraction of hidden tests a program passes in the
sandbox), and use the reward normalised *within the group* as every token's advantage
(outcome supervision, eq. 3 and section 4.1.2):

    Â_i,t = (r_i - mean(r_1..r_G)) / std(r_1..r_G)

The objective (eq. 3) is PPO's clipped surrogate on the ratio π_θ / π_θold per token,
averaged over each output's tokens and then over the group, minus β times a KL to the
frozen reference (the SFT model), estimated per token with the unbiased, positive
estimator of eq. 4 (Schulman's "k3"):

    D_KL = π_ref / π_θ - log(π_ref / π_θ) - 1

Read in order: the group advantages, the KL estimate, the loss, the rollout, the update.
The clipped surrogate is `ppo.policy_loss`; log-probabilities of responses come from
`rlhf.py`. Shapes: N prompts, G outputs each, B = N * G responses, P prompt length,
R response length.
"""

from dataclasses import dataclass

import numpy as np

from tinygen.autograd import no_grad
from tinygen.backend import get_array_module, read_floats, to_device
from tinygen.creation import as_tensor
from tinygen.optim import clip_grad_norm_
from tinygen.random import generator
from tinygen.rl import ppo
from tinygen.rl.rlhf import response_logprobs, response_mask
from tinygen.tensor import Tensor


def group_advantages(rewards, eps=1e-4):
    """Rewards [N, G] -> advantages [N, G] (a float32 Tensor on the device of the rewards),
    normalised within each group (DeepSeekMath 4.1.2). std with ddof=1 and eps as TRL's
    GRPOTrainer; a group whose outputs all scored the same has advantage 0 everywhere: it
    carries no signal about which is better."""
    rewards = as_tensor(rewards).data
    if rewards.ndim != 2 or rewards.shape[1] < 2:
        raise ValueError(f"group_advantages: rewards must be [N, G] with G >= 2, got shape "
                         f"{rewards.shape}")
    rewards = rewards.astype(np.float64)
    mean = rewards.mean(axis=1, keepdims=True)
    std = rewards.std(axis=1, ddof=1, keepdims=True)
    return Tensor(((rewards - mean) / (std + eps)).astype(np.float32))


def kl_k3(logprob, ref_logprob, mask=None):
    """Per-token estimate of KL(π_θ ‖ π_ref) on samples of π_θ (DeepSeekMath eq. 4):
    exp(ref - logp) - (ref - logp) - 1 >= 0. logprob a Tensor (it carries the gradient),
    ref_logprob a Tensor or array; with a mask, 0 where it is 0 (padding never overflows)."""
    logprob = as_tensor(logprob)
    log_ratio = as_tensor(ref_logprob, like=logprob) - logprob
    if mask is not None:
        log_ratio = log_ratio * as_tensor(mask, like=logprob)
    return log_ratio.exp() - log_ratio - 1


def sequence_weights(mask):
    """Weights [B, R] that average over each response's tokens, then over the responses
    (the 1/G Σ_i 1/|o_i| Σ_t of eq. 3); they add up to 1. A Tensor on the mask's device."""
    mask = as_tensor(mask).data
    lengths = get_array_module(mask).maximum(mask.sum(axis=1, keepdims=True), 1)
    return Tensor((mask / lengths / len(mask)).astype(np.float32))


def grpo_loss(new_logprob, old_logprob, ref_logprob, advantages, mask, clip_coef, beta):
    """The negated GRPO objective (eq. 3) and its KL term. new_logprob [B, R] (a Tensor),
    old_logprob and ref_logprob [B, R], advantages [B], mask [B, R] (Tensors or arrays).

    Both terms are sums over the tokens weighted by sequence_weights w (Σ w = 1): that is
    eq. 3's mean over each response's tokens, then over the responses. ppo.policy_loss with
    the weights as its mask computes Σ w l / Σ w, the same; no token is selected, so no
    data-dependent shape (and no host sync) arises on a GPU."""
    w = sequence_weights(as_tensor(mask, device=new_logprob.device))               # [B, R]
    advantages = as_tensor(advantages, like=new_logprob).reshape(-1, 1)          # [B, 1]
    pg_loss = ppo.policy_loss(new_logprob, old_logprob, advantages, clip_coef, mask=w)
    kl = (kl_k3(new_logprob, ref_logprob, mask) * w).sum()
    return pg_loss + beta * kl, pg_loss, kl


@dataclass
class GRPOConfig:
    """GRPO's hyperparameters (DeepSeekMath section 4.2 where they fit a tiny model)."""

    group_size: int = 8            # G: outputs sampled per prompt
    learning_rate: float = 3e-4    # Adam step size
    clip_coef: float = 0.2         # ε of the clipped ratio
    beta: float = 0.04             # weight of the KL to the reference (DeepSeekMath: 0.04)
    update_epochs: int = 2         # passes over each rollout (μ in the paper's algorithm 1)
    num_minibatches: int = 2       # minibatches of whole responses per pass
    max_grad_norm: float = 1.0     # global gradient-norm clipping
    temperature: float = 1.0       # sampling temperature of the rollouts


@no_grad()
def sample_until_eos(gpt, prompt_ids, max_len, eos_id, temperature=1.0, chunk=32):
    """Sample up to max_len tokens after each prompt [B, P], chunk tokens at a time with
    GPT.generate (and its KV cache), stopping once every row has an EOS: programs are
    mostly far shorter than the longest one (one host read a chunk, to decide). Returns
    tokens [B, P + R] (R <= max_len, a multiple of chunk or max_len) and the mask [B, R],
    Tensors on the model's device."""
    device = gpt.lm_head.weight.device
    tokens = as_tensor(prompt_ids, device=device)
    P = tokens.shape[1]
    while tokens.shape[1] - P < max_len:
        n = min(chunk, max_len - (tokens.shape[1] - P))
        tokens = gpt.generate(tokens, n, temperature=temperature)
        if (tokens[:, P:] == eos_id).any(axis=1).all().item():
            break
    return tokens, response_mask(tokens[:, P:], eos_id)


def sample_groups(policy, prompt_ids, group_size, max_len, eos_id, temperature=1.0):
    """G sampled responses per prompt: prompt_ids [N, P] -> tokens [N * G, P + R] and the
    response mask [N * G, R] (rows i * G .. i * G + G - 1 belong to prompt i)."""
    prompt_ids = as_tensor(prompt_ids).data
    repeated = get_array_module(prompt_ids).repeat(prompt_ids, group_size, axis=0)
    return sample_until_eos(policy, repeated, max_len, eos_id, temperature)


def grpo_update(policy, ref_gpt, optimizer, tokens, mask, advantages, cfg):
    """update_epochs passes over one rollout in minibatches of responses, one optimizer step
    each on the GRPO loss. tokens [B, P + R], mask [B, R], advantages [B] (the group
    advantages, flattened; Tensors or arrays). Returns diagnostics averaged over the steps
    (floats, read from the device once at the end): loss, kl (the eq. 4 estimate to the
    reference, per token), approx_kl and clipfrac (old -> new)."""
    device = policy.lm_head.weight.device
    tokens, mask = as_tensor(tokens, device=device), as_tensor(mask, device=device)
    advantages = as_tensor(advantages, device=device)
    P = tokens.shape[1] - mask.shape[1]
    with no_grad():
        old_logprob = response_logprobs(policy, tokens, P).data
        ref_logprob = response_logprobs(ref_gpt, tokens, P).data
    B, xp = len(tokens), get_array_module(mask.data)
    minibatch_size = max(B // cfg.num_minibatches, 1)
    logs = {"loss": [], "policy_loss": [], "kl": [], "approx_kl": [], "clipfrac": []}
    for _epoch in range(cfg.update_epochs):
        order = to_device(generator("cpu").permutation(B), device)
        for start in range(0, B, minibatch_size):
            mb = order[start:start + minibatch_size]
            mb_mask = mask.data[mb]
            new_logprob = response_logprobs(policy, Tensor(tokens.data[mb]), P)
            loss, pg_loss, kl = grpo_loss(new_logprob, old_logprob[mb], ref_logprob[mb],
                                          advantages.data[mb], mb_mask, cfg.clip_coef,
                                          cfg.beta)
            optimizer.zero_grad()
            loss.backward()
            clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
            optimizer.step()
            logratio = new_logprob.data - old_logprob[mb]                    # no gradient
            logs["loss"].append(loss.data)
            logs["policy_loss"].append(pg_loss.data)
            logs["kl"].append(kl.data)
            logs["approx_kl"].append(ppo._approx_kl(logratio, mb_mask))
            logs["clipfrac"].append(ppo._clipfrac(xp.exp(logratio), cfg.clip_coef, mb_mask))
    read = read_floats(xp.stack([xp.stack(v).astype(xp.float64).mean()
                                 for v in logs.values()]))                     # one sync
    return dict(zip(logs, read.tolist()))

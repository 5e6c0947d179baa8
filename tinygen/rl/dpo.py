"""Direct Preference Optimization (Rafailov et al. 2023): RLHF without a reward model or RL.

The KL-regularised objective that PPO maximises, E[r(x, y)] - β KL(π ‖ π_ref), has the
closed-form optimum π*(y|x) ∝ π_ref(y|x) exp(r(x, y) / β). Turned around, every policy
defines an implicit reward r(x, y) = β log(π(y|x) / π_ref(y|x)) + (a term that depends on x
only). Put that reward into the Bradley–Terry loss of the reward model and the x-only term
cancels:

    loss = -log σ(β [(log π(y_w|x) - log π_ref(y_w|x)) - (log π(y_l|x) - log π_ref(y_l|x))])

a classification loss on the same preference pairs, minimised directly over the policy.
Shapes: B pairs; log-probabilities are of whole responses (summed over their tokens).
"""

from tinygen.autograd import no_grad
from tinygen.creation import as_tensor, ones_like
from tinygen.nn import functional as F
from tinygen.rl.rlhf import sequence_logprob
from tinygen.tensor import cat


def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
             ref_rejected_logps, beta):
    """The DPO loss (Rafailov et al. 2023, eq. 7), averaged over pairs [B]. The policy's
    log-probabilities are Tensors with gradient, the reference's constants (Tensors, or
    arrays). Also returns the implicit rewards β log(π/π_ref) of chosen and rejected [B]
    (Tensors without gradient, for logging). Binary cross-entropy with target 1 is -log σ,
    computed stably."""
    # constants with the policy's dtype (a float64 array must not turn float32 math float64)
    ref_chosen = as_tensor(ref_chosen_logps, like=policy_chosen_logps).detach()
    ref_rejected = as_tensor(ref_rejected_logps, like=policy_chosen_logps).detach()
    chosen_logratios = policy_chosen_logps - ref_chosen             # log π/π_ref (y_w)
    rejected_logratios = policy_rejected_logps - ref_rejected       # log π/π_ref (y_l)
    logits = beta * (chosen_logratios - rejected_logratios)
    loss = F.binary_cross_entropy_with_logits(logits, ones_like(logits))
    return loss, beta * chosen_logratios.detach(), beta * rejected_logratios.detach()


@no_grad()
def batched_sequence_logprob(gpt, tokens, mask, prompt_len, batch_size=256):
    """log π(y|x) [B] of many responses without gradient, batch_size at a time: the
    reference's, once before training (it never changes), or the policy's, to evaluate.
    tokens [B, T], mask [B, R] (Tensors or arrays) -> a Tensor [B] on the model's device."""
    device = gpt.lm_head.weight.device
    tokens, mask = as_tensor(tokens, device=device), as_tensor(mask, device=device)
    return cat([sequence_logprob(gpt, tokens[i:i + batch_size], mask[i:i + batch_size],
                                 prompt_len) for i in range(0, len(tokens), batch_size)])


def dpo_batch_loss(policy_gpt, batch, prompt_len, beta):
    """The DPO loss of one minibatch of pairs: batch holds chosen/rejected tokens [B, T] and
    masks [B, R] and the reference's log-probabilities [B] of both (Tensors or arrays). The
    chosen and rejected responses go through the policy together, as one batch of 2B."""
    device = policy_gpt.lm_head.weight.device
    b = {k: as_tensor(v, device=device) for k, v in batch.items()}
    B = len(b["chosen_tokens"])
    tokens = cat([b["chosen_tokens"], b["rejected_tokens"]])                   # [2B, T]
    mask = cat([b["chosen_mask"], b["rejected_mask"]])                         # [2B, R]
    logps = sequence_logprob(policy_gpt, tokens, mask, prompt_len)             # [2B]
    return dpo_loss(logps[:B], logps[B:], b["ref_chosen_logps"], b["ref_rejected_logps"], beta)


def implicit_reward_accuracy(policy_gpt, pairs, prompt_len):
    """Fraction of pairs whose implicit reward β log(π/π_ref) ranks chosen above rejected
    (β > 0 does not change the order): DPO's counterpart of the reward model's accuracy.
    `pairs` as in dpo_batch_loss; a float."""
    chosen = batched_sequence_logprob(policy_gpt, pairs["chosen_tokens"],
                                      pairs["chosen_mask"], prompt_len)
    rejected = batched_sequence_logprob(policy_gpt, pairs["rejected_tokens"],
                                        pairs["rejected_mask"], prompt_len)
    chosen_logratios = chosen - as_tensor(pairs["ref_chosen_logps"], like=chosen)
    rejected_logratios = rejected - as_tensor(pairs["ref_rejected_logps"], like=chosen)
    return (chosen_logratios > rejected_logratios).float().mean().item()

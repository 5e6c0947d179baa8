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

import numpy as np

from tinygen.autograd import no_grad
from tinygen.backend import get_array_module, to_device
from tinygen.creation import as_tensor
from tinygen.nn import functional as F
from tinygen.rl.rlhf import sequence_logprob
from tinygen.tensor import Tensor


def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
             ref_rejected_logps, beta):
    """The DPO loss (Rafailov et al. 2023, eq. 7), averaged over pairs [B]. The policy's
    log-probabilities are tensors with gradient, the reference's constants (arrays or
    tensors). Also returns the implicit rewards β log(π/π_ref) of chosen and rejected [B]
    (NumPy, for logging). Binary cross-entropy with target 1 is -log σ, computed stably."""
    # constants with the policy's dtype (a float64 array must not turn float32 math float64)
    ref_chosen = as_tensor(ref_chosen_logps, like=policy_chosen_logps).detach()
    ref_rejected = as_tensor(ref_rejected_logps, like=policy_chosen_logps).detach()
    chosen_logratios = policy_chosen_logps - ref_chosen             # log π/π_ref (y_w)
    rejected_logratios = policy_rejected_logps - ref_rejected       # log π/π_ref (y_l)
    logits = beta * (chosen_logratios - rejected_logratios)
    xp = get_array_module(logits.data)
    loss = F.binary_cross_entropy_with_logits(logits, Tensor(xp.ones_like(logits.data)))
    chosen_rewards = beta * chosen_logratios.detach().numpy()
    rejected_rewards = beta * rejected_logratios.detach().numpy()
    return loss, chosen_rewards, rejected_rewards


@no_grad()
def batched_sequence_logprob(gpt, tokens, mask, prompt_len, batch_size=256):
    """log π(y|x) [B] of many responses without gradient, batch_size at a time: the
    reference's, once before training (it never changes), or the policy's, to evaluate.
    tokens [B, T], mask [B, R] are NumPy arrays."""
    device = gpt.lm_head.weight.device
    tokens, mask = as_tensor(tokens).numpy(), as_tensor(mask).numpy()
    out = []
    for i in range(0, len(tokens), batch_size):
        out.append(sequence_logprob(gpt, to_device(tokens[i:i + batch_size], device),
                                    mask[i:i + batch_size], prompt_len).numpy())
    return np.concatenate(out)


def dpo_batch_loss(policy_gpt, batch, prompt_len, beta):
    """The DPO loss of one minibatch of pairs: batch holds chosen/rejected tokens [B, T] and
    masks [B, R] and the reference's log-probabilities [B] of both. The chosen and rejected
    responses go through the policy together, as one batch of 2B."""
    keys = ("chosen_tokens", "rejected_tokens", "chosen_mask", "rejected_mask",
            "ref_chosen_logps", "ref_rejected_logps")
    b = {k: as_tensor(batch[k]).numpy() for k in keys}              # Tensors or arrays
    B = len(b["chosen_tokens"])
    tokens = np.concatenate([b["chosen_tokens"], b["rejected_tokens"]])
    mask = np.concatenate([b["chosen_mask"], b["rejected_mask"]])
    device = policy_gpt.lm_head.weight.device
    logps = sequence_logprob(policy_gpt, to_device(tokens, device), mask, prompt_len)  # [2B]
    return dpo_loss(logps[:B], logps[B:], b["ref_chosen_logps"], b["ref_rejected_logps"], beta)


def implicit_reward_accuracy(policy_gpt, pairs, prompt_len):
    """Fraction of pairs whose implicit reward β log(π/π_ref) ranks chosen above rejected
    (β > 0 does not change the order): DPO's counterpart of the reward model's accuracy.
    `pairs` as in dpo_batch_loss."""
    chosen = batched_sequence_logprob(policy_gpt, pairs["chosen_tokens"],
                                      pairs["chosen_mask"], prompt_len)
    rejected = batched_sequence_logprob(policy_gpt, pairs["rejected_tokens"],
                                        pairs["rejected_mask"], prompt_len)
    chosen_logratios = chosen - pairs["ref_chosen_logps"]
    rejected_logratios = rejected - pairs["ref_rejected_logps"]
    return float((chosen_logratios > rejected_logratios).mean())

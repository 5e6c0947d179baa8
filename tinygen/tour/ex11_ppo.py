"""Tour exercise 11 (stop 11, PPO): the clipped surrogate objective.

PPO paper (Schulman et al. 2017), eq. 7, negated for minimising:
    ratio = exp(new_logprob - old_logprob)
    loss  = mean(max(-A · ratio, -A · clip(ratio, 1 - clip_coef, 1 + clip_coef)))
This stub is the unclipped policy gradient: nothing stops a big step. new_logprob is a
Tensor [N]; old_logprob and advantages are arrays [N]. Hint: tinygen.where(cond, a, b).
Check: python -m tinygen.tour check 11
"""

from tinygen.tensor import Tensor


def policy_loss(new_logprob, old_logprob, advantages, clip_coef):
    ratio = (new_logprob - Tensor(old_logprob)).exp()
    return (-Tensor(advantages) * ratio).mean()   # tour exercise 11: clip the ratio

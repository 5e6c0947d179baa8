"""Solution to tour exercise 11 (try it yourself first)."""

from tinygen.tensor import Tensor, where


def policy_loss(new_logprob, old_logprob, advantages, clip_coef):
    ratio = (new_logprob - Tensor(old_logprob)).exp()
    advantages = Tensor(advantages)
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * ratio.clip(1 - clip_coef, 1 + clip_coef)
    return where(pg_loss1.data >= pg_loss2.data, pg_loss1, pg_loss2).mean()

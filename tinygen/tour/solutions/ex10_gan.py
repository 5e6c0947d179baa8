"""Solution to tour exercise 10 (try it yourself first)."""

from tinygen.nn import functional as F


def g_loss(fake_logits):
    return F.binary_cross_entropy_with_logits(fake_logits, 1.0)   # mean softplus(-l)

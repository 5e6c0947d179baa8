"""Tour exercise 10 (stop 10, GAN losses): the non-saturating generator loss.

Goodfellow et al. 2014, sec. 3: G could minimise log(1 - D(G(z))) (what this stub does),
but early in training D rejects every sample, D(G(z)) ≈ 0, and that loss is flat: G gets
no gradient. Minimise -log D(G(z)) instead: same fixed point, strong gradients when G is
bad. fake_logits [N, 1] are D's logits (D = sigmoid(logit)); return the mean loss.
Hint: -log sigmoid(l) = softplus(-l); F.binary_cross_entropy_with_logits(l, 1.0) is it.
Check: python -m tinygen.tour check 10
"""


def g_loss(fake_logits):
    # log(1 - sigmoid(l)) = -softplus(l): the saturating loss. tour exercise 10
    return -(fake_logits.exp() + 1).log().mean()

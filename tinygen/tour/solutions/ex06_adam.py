"""Solution to tour exercise 6 (try it yourself first)."""

import numpy as np


def adam_update(x, g, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    beta1, beta2 = betas
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g * g
    m_hat = m / (1 - beta1 ** t)
    v_hat = v / (1 - beta2 ** t)
    x -= lr * m_hat / (np.sqrt(v_hat) + eps)

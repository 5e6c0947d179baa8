"""Solution to tour exercise 12 (try it yourself first)."""

import numpy as np


class AdaptiveKLController:
    def __init__(self, init_kl_coef, target, horizon):
        self.value, self.target, self.horizon = init_kl_coef, target, horizon

    def update(self, current_kl, n_steps):
        e = np.clip(current_kl / self.target - 1, -0.2, 0.2)
        self.value *= 1 + e * n_steps / self.horizon
        return self.value

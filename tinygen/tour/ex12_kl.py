"""Tour exercise 12 (stop 12, RLHF): the adaptive KL controller.

Ziegler et al. 2019, sec. 2.2: the reward is score - kl_coef · KL(π ‖ π_ref), and kl_coef
is steered so that the measured KL stays near `target`:
    e = clip(KL / target - 1, -0.2, 0.2)
    kl_coef <- kl_coef · (1 + e · n_steps / horizon)
This stub never moves kl_coef. Check: python -m tinygen.tour check 12
"""


class AdaptiveKLController:
    def __init__(self, init_kl_coef, target, horizon):
        self.value, self.target, self.horizon = init_kl_coef, target, horizon

    def update(self, current_kl, n_steps):
        return self.value  # tour exercise 12: move self.value, then return it

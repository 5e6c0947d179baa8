"""Learning-rate schedules: linear warmup then cosine decay (GPT-2 / nanoGPT)."""

import math


def warmup_cosine(step, max_lr, min_lr, warmup_iters, decay_iters):
    """lr at `step`: linear from 0 to max_lr over warmup_iters, cosine down to min_lr at
    decay_iters, min_lr after that (nanoGPT's get_lr)."""
    if step < warmup_iters:
        return max_lr * (step + 1) / (warmup_iters + 1)
    if step >= decay_iters:
        return min_lr
    ratio = (step - warmup_iters) / max(decay_iters - warmup_iters, 1)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (max_lr - min_lr)


class WarmupCosine:
    """Sets every group's lr from warmup_cosine; call `step()` once per training step, before
    `optimizer.step()`. Groups keep their ratio to the first group's initial lr."""

    def __init__(self, optimizer, warmup_iters, decay_iters, min_lr_ratio=0.1):
        self.optimizer, self.warmup_iters, self.decay_iters = optimizer, warmup_iters, decay_iters
        self.min_lr_ratio = min_lr_ratio
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.last_step = -1

    def step(self):
        self.last_step += 1
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = warmup_cosine(self.last_step, base, base * self.min_lr_ratio,
                                        self.warmup_iters, self.decay_iters)
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self):
        return {"last_step": self.last_step, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state):
        self.last_step, self.base_lrs = state["last_step"], list(state["base_lrs"])

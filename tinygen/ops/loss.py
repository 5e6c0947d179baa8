"""Losses with a hand-written backward: cross-entropy over class logits."""

from tinygen.autograd import Function
from tinygen.backend import get_array_module


class CrossEntropy(Function):
    """Mean of -log softmax(logits)[target] over targets that are not ignore_index.
    logits [N, V], target [N] integers (an option, not a graph input).

    Replaces the composition `-logits.log_softmax(-1)[arange(N), target]` masked and
    averaged. Fused for stability (log-sum-exp, never the log of a rounded-to-zero
    probability) and memory (no one-hot matrix; backward is softmax - one_hot in place)."""

    def forward(self, logits, target, ignore_index=-100, reduction="mean"):
        xp = get_array_module(logits)
        N, V = logits.shape
        valid = target != ignore_index
        safe = xp.where(valid, target, 0)
        if safe.size and (int(safe.min()) < 0 or int(safe.max()) >= V):
            bad = int(safe.max()) if int(safe.max()) >= V else int(safe.min())
            raise IndexError(f"target {bad} is out of range for {V} classes")
        logp = logits - logits.max(axis=1, keepdims=True)
        logp -= xp.log(xp.exp(logp).sum(axis=1, keepdims=True))
        picked = logp[xp.arange(N), safe] * valid
        self.logp, self.safe, self.valid, self.reduction = logp, safe, valid, reduction
        self.count = max(int(valid.sum()), 1) if reduction == "mean" else 1
        if reduction == "none":
            return -picked
        return -picked.sum() / self.count

    def backward(self, grad):
        xp = get_array_module(self.logp)
        g = xp.exp(self.logp)                        # softmax
        g[xp.arange(g.shape[0]), self.safe] -= 1     # softmax - one_hot(target)
        scale = grad[:, None] if self.reduction == "none" else grad / self.count
        g *= self.valid[:, None] * scale
        return g

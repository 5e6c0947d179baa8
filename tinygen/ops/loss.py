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
        N = logits.shape[0]
        valid = target != ignore_index
        safe = xp.where(valid, target, 0)
        # bounds: checked by F.cross_entropy (backend.check_index_bounds), without a sync
        logp = logits - logits.max(axis=1, keepdims=True)
        logp -= xp.log(xp.exp(logp).sum(axis=1, keepdims=True))
        picked = logp[xp.arange(N), safe] * valid
        self.logp, self.safe, self.valid, self.reduction = logp, safe, valid, reduction
        # a device scalar on the GPU: no int() sync
        self.count = (xp.maximum(valid.sum(), 1).astype(logits.dtype) if reduction == "mean"
                      else 1)
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

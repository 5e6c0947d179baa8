"""Losses with a hand-written backward: cross-entropy over class logits."""

from tinygen.autograd import Function
from tinygen.backend import get_array_module, row_maxes, row_sums
from tinygen.ops import kernel_calls, kernels


class CrossEntropy(Function):
    """-log softmax(logits)[target] per row, over targets that are not ignore_index, with
    PyTorch's class `weight` [V] and `label_smoothing` ε. logits [N, V], target [N]
    integers (an option, not a graph input). Per row i (w = 1 without a weight):

        loss_i = (1 - ε) w[y_i] (-logp[i, y_i]) + ε/V Σ_c w_c (-logp[i, c])

    'mean' divides the sum by Σ_i w[y_i] over the kept rows (PyTorch's weighted mean).

    Replaces the composition `-logits.log_softmax(-1)[arange(N), target]` masked, weighted
    and averaged. Fused for stability (log-sum-exp, never the log of a rounded-to-zero
    probability) and memory (no one-hot matrix; backward is softmax - one_hot in place)."""

    def forward(self, logits, target, ignore_index=-100, reduction="mean", weight=None,
                label_smoothing=0.0):
        xp = get_array_module(logits)
        N, V = logits.shape
        valid = target != ignore_index
        self.reduction, self.kernel_grad = reduction, None
        if weight is None and not label_smoothing and kernels.use("cross_entropy", logits):
            # loss.cu: the losses and softmax - one_hot(target) in one pass over the logits
            losses, self.kernel_grad = kernel_calls.cross_entropy_forward_backward_cuda(
                logits, target, ignore_index)
            return self._reduce(xp, losses, valid.astype(logits.dtype), weighted=False)
        safe = xp.where(valid, target, 0)
        # bounds: checked by F.cross_entropy (backend.check_index_bounds), without a sync
        logp = logits - row_maxes(logits)
        logp -= xp.log(row_sums(xp.exp(logp)))                   # sums as gemv
        wy = valid.astype(logits.dtype) if weight is None else weight[safe] * valid  # [N]
        eps = label_smoothing
        losses = -logp[xp.arange(N), safe] * wy
        if eps:
            smooth = -(logp.sum(axis=1) if weight is None else logp @ weight)       # [N]
            losses = (1 - eps) * losses + (eps / V) * smooth * valid
        self.logp, self.safe, self.valid = logp, safe, valid
        self.wy, self.weight, self.eps = wy, weight, eps
        return self._reduce(xp, losses, wy, weighted=weight is not None)

    def _reduce(self, xp, losses, wy, weighted):
        """losses [N] as `reduction` asks; the mean divides by the rows' weights wy, summed
        (a device scalar on the GPU: no int() sync; all rows ignored without a weight gives
        0, not PyTorch's 0/0 = nan)."""
        self.count = (1 if self.reduction != "mean" else wy.sum() if weighted
                      else xp.maximum(wy.sum(), 1))
        return losses if self.reduction == "none" else losses.sum() / self.count

    def backward(self, grad):
        if self.kernel_grad is not None:             # the kernel's gradient, 0 on ignored rows
            scale = grad[:, None] if self.reduction == "none" else grad / self.count
            return self.kernel_grad * scale
        xp = get_array_module(self.logp)
        N, V = self.logp.shape
        g = xp.exp(self.logp)                        # softmax
        eps, wy = self.eps, self.wy
        scale = grad[:, None] if self.reduction == "none" else grad / self.count
        if not eps:                                  # wy (softmax - one_hot(target)) · scale
            g[xp.arange(N), self.safe] -= 1
            g *= wy[:, None] * scale                 # one pass: the row factors multiplied first
        else:  # d/dz of Σ_c q_c (-logp_c) is softmax · Σ_c q_c - q, for the row's q
            kept = self.valid.astype(g.dtype) * (eps / V)
            wsum = V if self.weight is None else self.weight.sum()
            g *= ((1 - eps) * wy + kept * wsum)[:, None]
            g[xp.arange(N), self.safe] -= (1 - eps) * wy
            g -= kept[:, None] * (1 if self.weight is None else self.weight[None, :])
            g *= scale
        return g

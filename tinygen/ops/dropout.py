"""Inverted dropout (Srivastava et al. 2014): zero some entries, scale the rest by 1/(1-p)."""

from tinygen.autograd import Function


class DropoutFunction(Function):
    """x * mask, where mask holds 0 or 1/(1 - p) (drawn by F.dropout).

    Replaces the composition `x * tg.tensor(mask)` (a Mul). Fused for memory: Mul would
    keep x for the mask's gradient, which nobody wants; this keeps only the mask."""

    def forward(self, x, mask):
        self.mask = mask
        return x * mask

    def backward(self, grad):
        return grad * self.mask

"""The affine map of a Linear layer: y = x Wᵀ + b."""

from tinygen.autograd import Function
from tinygen.backend import column_sums, is_batch_last
from tinygen.blocked import matmul, matmul_long_inner


class LinearFunction(Function):
    """y = x @ W.T + b for x [..., in], W [out, in], b [out] -> [..., out].

    Replaces the composition `x @ W.transpose(-1, -2) + b` (three nodes: permute, matmul,
    add). Fused for speed: [..., in] is flattened to one [N, in] BLAS call, dW is one
    [out, N] @ [N, in] product instead of a product per batch then a sum, and db is one
    gemv (backend.column_sums). The products are tinygen.blocked's, shared among BLAS's
    threads by blocks (docs/cpu_speed.md says why)."""

    def forward(self, x, weight, bias=None):
        if x.shape[-1] != weight.shape[1]:
            raise ValueError(f"input has {x.shape[-1]} features, the weight "
                             f"{tuple(weight.shape)} expects {weight.shape[1]}")
        self.x, self.weight, self.has_bias = x, weight, bias is not None
        out = matmul(x.reshape(-1, x.shape[-1]), weight.T)  # [N, in] @ [in, out] -> [N, out]
        if bias is not None:
            out += bias
        return out.reshape(*x.shape[:-1], weight.shape[0])

    def backward(self, grad):
        x2 = self.x.reshape(-1, self.weight.shape[1])          # [N, in]
        g2 = grad.reshape(-1, self.weight.shape[0])            # [N, out]
        gx = gw = None
        if self.needs_input_grad[0]:                           # [N, out] @ [out, in]
            # laid out in memory as x is, so the ops after it do not mix orders (several
            # times slower in NumPy): (Wᵀ g2ᵀ)ᵀ, the same product, when x is batch-last
            gx = (matmul(self.weight.T, g2.T).T if is_batch_last(x2) else
                  matmul(g2, self.weight)).reshape(self.x.shape)
        if self.needs_input_grad[1]:                           # [out, N] @ [N, in]
            gw = matmul_long_inner(g2.T, x2)
        if not self.has_bias:
            return gx, gw
        return gx, gw, column_sums(g2)

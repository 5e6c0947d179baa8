"""Matrix product with NumPy's `@` semantics: 1-D operands, batches and broadcasting."""

from tinygen.autograd import Function


class MatMul(Function):
    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError("matmul needs at least 1-D operands; use * for scalars")
        if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(f"shapes {tuple(a.shape)} @ {tuple(b.shape)}: inner dimensions "
                             f"{a.shape[-1]} and {b.shape[-2 if b.ndim > 1 else 0]} differ")
        self.a, self.b = a, b
        if a.ndim > 2 and b.ndim == 2:  # [..., K] @ [K, N]: one big BLAS call, not a loop
            return (a.reshape(-1, a.shape[-1]) @ b).reshape(*a.shape[:-1], b.shape[1])
        return a @ b

    def backward(self, grad):
        a, b = self.a, self.b
        # treat 1-D operands as matrices: a [K] -> [1, K], b [K] -> [K, 1]
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if a.ndim == 1:
            grad = grad[..., None, :] if b.ndim > 1 else grad[..., None]
        if b.ndim == 1:
            grad = grad[..., None]
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = grad @ b2.swapaxes(-1, -2)       # [..., M, N] @ [..., N, K] -> [..., M, K]
            if a.ndim == 1:
                ga = ga[..., 0, :]
        if self.needs_input_grad[1]:
            if b2.ndim == 2 and a2.ndim > 2:  # sum over the batch inside one BLAS call
                gb = a2.reshape(-1, a2.shape[-1]).T @ grad.reshape(-1, grad.shape[-1])
            else:
                gb = a2.swapaxes(-1, -2) @ grad   # [..., K, M] @ [..., M, N] -> [..., K, N]
            if b.ndim == 1:
                gb = gb[..., 0]
        return ga, gb

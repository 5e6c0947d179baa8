"""Linear-algebra Functions (tinygen.linalg): det, inv, solve, cholesky, qr, eigh, svd.

Every op works on the last two axes, batched over the others, real floating-point. The
backward formulas are the standard ones (Giles 2008, "Collected matrix derivative results
for forward and reverse mode AD"; Murray 2016 for Cholesky; Walter & Lehmann / Seeger et
al. 2017 for QR; Townsend 2016 for the SVD), written as in PyTorch's
FunctionsManual.cpp. A decomposition with several outputs (Q and R, eigenvalues and
eigenvectors, U S Vh) is one Function per output, selected by `part`: the backward is
linear in the output gradients, so the contributions of the parts add up in the engine
(each part recomputes the decomposition: clarity over a second LAPACK call).
"""

import numpy as np

from tinygen.autograd import Function
from tinygen.backend import get_array_module


def mT(a):
    """The matrix transpose of the last two axes (batched)."""
    return a.swapaxes(-1, -2)


def _eye(xp, n, dtype):
    return xp.eye(n, dtype=dtype)


class Det(Function):
    """det(A); d det / dA = det(A) · A⁻ᵀ (Jacobi's formula; A must be invertible)."""

    def forward(self, a):
        xp = get_array_module(a)
        self.a, self.det = a, xp.linalg.det(a)
        return self.det

    def backward(self, grad):
        xp = get_array_module(grad)
        return (grad * self.det)[..., None, None] * mT(xp.linalg.inv(self.a))


class Inv(Function):
    """A⁻¹; d(A⁻¹) = −A⁻¹ dA A⁻¹, so gA = −A⁻ᵀ g A⁻ᵀ."""

    def forward(self, a):
        self.out = get_array_module(a).linalg.inv(a)
        return self.out

    def backward(self, grad):
        inv_t = mT(self.out)
        return -(inv_t @ grad @ inv_t)


class Solve(Function):
    """X = A⁻¹ B for A [..., n, n], B [..., n, k] (batch axes broadcast); gB = A⁻ᵀ g,
    gA = −gB Xᵀ (Giles 2008, 2.3.1)."""

    def forward(self, a, b):
        xp = get_array_module(a)
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        self.a = xp.broadcast_to(a, batch + a.shape[-2:])
        self.x = xp.linalg.solve(self.a, xp.broadcast_to(b, batch + b.shape[-2:]))
        return self.x

    def backward(self, grad):
        gb = get_array_module(grad).linalg.solve(mT(self.a), grad)
        return -(gb @ mT(self.x)), gb


class Cholesky(Function):
    """L with A = L Lᵀ (lower). With Φ(X) = the lower triangle of X, diagonal halved:
    gA = sym(L⁻ᵀ Φ(Lᵀ gL) L⁻¹), sym(X) = (X + Xᵀ)/2 (Murray 2016, eq. 10; A is read as
    symmetric, so its gradient is symmetric)."""

    def forward(self, a):
        self.l = get_array_module(a).linalg.cholesky(a)
        return self.l

    def backward(self, grad):
        xp = get_array_module(grad)
        n = self.l.shape[-1]
        lower_half_diag = xp.tri(n, dtype=grad.dtype) - 0.5 * _eye(xp, n, grad.dtype)
        phi = (mT(self.l) @ grad) * lower_half_diag
        l_inv = xp.linalg.inv(self.l)
        ga = mT(l_inv) @ phi @ l_inv
        return 0.5 * (ga + mT(ga))


class QR(Function):
    """Q [..., m, k], R [..., k, n] of the reduced QR (k = min(m, n)); `part` picks "Q" or "R".
    For m >= n: with M = R gRᵀ − gQᵀ Q and copyltu(M) = the symmetric matrix of M's lower
    triangle, gA = (gQ + Q copyltu(M)) R⁻ᵀ (Walter & Lehmann 2018; Seeger et al. 2017).
    For m < n, split A = [X | Y] and R = [U | V] after m columns: X = Q U is a square QR and
    Y = Q V, so gY = Q gV and gX is the square case with gQ + Y gVᵀ (Liao et al. 2019)."""

    def forward(self, a, part):
        xp = get_array_module(a)
        self.part = part
        self.q, self.r = xp.linalg.qr(a, mode="reduced")
        return self.q if part == "Q" else self.r

    def backward(self, grad):
        xp = get_array_module(grad)
        q, r = self.q, self.r
        gq, gr = (grad, xp.zeros_like(r)) if self.part == "Q" else (xp.zeros_like(q), grad)
        m, n = q.shape[-2], r.shape[-1]
        if m >= n:
            return _qr_backward_tall(xp, q, r, gq, gr)
        u, v, gu, gv = r[..., :m], r[..., m:], gr[..., :m], gr[..., m:]
        gx = _qr_backward_tall(xp, q, u, gq + (q @ v) @ mT(gv), gu)
        return xp.concatenate([gx, q @ gv], axis=-1)


def _qr_backward_tall(xp, q, r, gq, gr):
    """gA of A = Q R for m >= n (QR's docstring)."""
    n = r.shape[-1]
    lower = (r @ mT(gr) - mT(gq) @ q) * xp.tri(n, dtype=gq.dtype)
    sym = lower + mT(lower) - lower * _eye(xp, n, gq.dtype)
    return mT(xp.linalg.solve(r, mT(gq + q @ sym)))  # (…) R⁻ᵀ as a solve with R


def _gap_inverse(xp, values):
    """F[i, j] = 1 / (values[j] − values[i]) off the diagonal, 0 on it (distinct values)."""
    gap = values[..., None, :] - values[..., :, None]
    n = values.shape[-1]
    gap = gap + _eye(xp, n, values.dtype)  # keep the diagonal away from 1/0
    return (1 - _eye(xp, n, values.dtype)) / gap


class Eigh(Function):
    """Eigenvalues L (ascending) or eigenvectors V of a symmetric A = V diag(L) Vᵀ; `part`
    picks "L" or "V". gA = V (diag(gL) + F ∘ (Vᵀ gV)) Vᵀ with F[i, j] = 1/(L_j − L_i)
    (Giles 2008, 3.1): finite only for distinct eigenvalues, as in PyTorch."""

    def forward(self, a, part):
        xp = get_array_module(a)
        self.part = part
        self.values, self.vectors = xp.linalg.eigh(a)
        return self.values if part == "L" else self.vectors

    def backward(self, grad):
        xp = get_array_module(grad)
        v = self.vectors
        if self.part == "L":
            inner = grad[..., :, None] * _eye(xp, v.shape[-1], grad.dtype)
        else:
            inner = _gap_inverse(xp, self.values) * (mT(v) @ grad)
        return v @ inner @ mT(v)


class SVD(Function):
    """U [..., m, k], S [..., k], Vh [..., k, n] of the reduced SVD; `part` picks one.
    Townsend 2016, with F[i, j] = 1/(s_j² − s_i²), V = Vhᵀ:
      gA = U [(F ∘ (Uᵀ gU − gUᵀ U)) S + diag(gS) + S (F ∘ (Vᵀ gV − gVᵀ V))] Vᵀ
           + (I − U Uᵀ) gU S⁻¹ Vᵀ + U S⁻¹ gVᵀ (I − V Vᵀ),
    finite for distinct nonzero singular values (as in PyTorch)."""

    def forward(self, a, part):
        xp = get_array_module(a)
        self.part = part
        self.u, self.s, self.vh = xp.linalg.svd(a, full_matrices=False)
        return {"U": self.u, "S": self.s, "Vh": self.vh}[part]

    def backward(self, grad):
        xp = get_array_module(grad)
        u, s, vh = self.u, self.s, self.vh
        v, k = mT(vh), s.shape[-1]
        eye = _eye(xp, k, grad.dtype)
        if self.part == "S":
            return u @ (grad[..., :, None] * eye) @ vh
        f = _gap_inverse(xp, s * s)
        if self.part == "U":
            gu = grad
            inner = (f * (mT(u) @ gu - mT(gu) @ u)) * s[..., None, :]
            out = u @ inner @ vh
            if u.shape[-2] > k:  # the part of gU outside U's columns
                out = out + (gu - u @ (mT(u) @ gu)) / s[..., None, :] @ vh
            return out
        gv = mT(grad)
        inner = s[..., :, None] * (f * (mT(v) @ gv - mT(gv) @ v))
        out = u @ inner @ vh
        if v.shape[-2] > k:
            out = out + u @ mT((gv - v @ (mT(v) @ gv)) / s[..., None, :])
        return out

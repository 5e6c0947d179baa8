"""tg.linalg: torch.linalg's names and signatures, on the last two axes, batched.

Norms are compositions of tensor ops (their gradients come from those ops); det, inv,
solve, cholesky, qr, eigh and svd are Functions in tinygen/ops/linalg.py, with their
backward formulas and sources there. `matrix_rank` returns integers and has no gradient,
as in PyTorch. Only real floating-point tensors (an integer input is read as float32).
"""

import math

import numpy as np

from tinygen import ops
from tinygen.functions import _t, matmul  # matmul: tg.linalg.matmul (in __all__)
from tinygen.tensor import stack, where


def _floating(x, op, dtype=None, min_dims=0):
    x = _t(x)
    if dtype is not None:
        x = x.to(dtype=dtype)
    if x.dtype.kind == "c":
        raise TypeError(f"linalg.{op}: complex tensors are not supported")
    if x.ndim < min_dims:
        raise ValueError(f"linalg.{op}: needs a tensor with at least {min_dims} dims, got "
                         f"shape {x.shape}")
    return x._float()


def _square(x, op):
    x = _floating(x, op, min_dims=2)
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"linalg.{op}: needs square matrices in the last two dims, got "
                         f"shape {x.shape}")
    return x


# ---- norms --------------------------------------------------------------------------------
def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    """(Σ |x|^ord)^(1/ord) over `dim` (an int, a tuple, or None: every entry), as
    torch.linalg.vector_norm; ord = inf / -inf is the largest / smallest |x|, ord = 0 the
    number of nonzero entries (gradient 0)."""
    x = _floating(x, "vector_norm", dtype)
    if isinstance(ord, str) or not isinstance(ord, (int, float)):
        raise TypeError(f"linalg.vector_norm: ord must be a number, got {ord!r}")
    a = x.abs()
    if ord == math.inf:
        return a.amax(dim, keepdim)
    if ord == -math.inf:
        return a.amin(dim, keepdim)
    if ord == 0:  # a count: gradient 0 (x * 0 keeps the graph, as PyTorch's output has one)
        return (x * 0).sum(dim, keepdim) + (a != 0).to(dtype=x.dtype).sum(dim, keepdim)
    if ord == 1:
        return a.sum(dim, keepdim)
    if ord == 2:
        return _root((x * x).sum(dim, keepdim), 2)
    return _root((a ** ord).sum(dim, keepdim), ord)


def _root(s, p):
    """s^(1/p) with gradient 0 where s = 0 (PyTorch's norm of a zero vector has gradient 0,
    where s^(1/p) alone would give inf · 0 = nan): the root only ever sees s > 0."""
    zero = s == 0
    return where(zero, 0.0, where(zero, 1.0, s) ** (1 / p))


def matrix_norm(x, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None):
    """The matrix norm over the two axes `dim`, as torch.linalg.matrix_norm: 'fro', 'nuc'
    (the sum of the singular values), 1 / -1 (largest / smallest column sum of |x|),
    inf / -inf (rows), 2 / -2 (largest / smallest singular value)."""
    x = _floating(x, "matrix_norm", dtype, min_dims=2)
    if not isinstance(dim, (tuple, list)) or len(dim) != 2:
        raise ValueError(f"linalg.matrix_norm: dim must be a pair of axes, got {dim!r}")
    d0, d1 = (x._axis(d, "matrix_norm") for d in dim)
    if d0 == d1:
        raise ValueError(f"linalg.matrix_norm: dim names one axis twice, {dim!r}")
    if ord == "fro":
        return _root((x * x).sum((d0, d1), keepdim), 2)
    if ord in ("nuc", 2, -2):
        s = svdvals(x.movedim((d0, d1), (-2, -1)))
        out = s.sum(-1) if ord == "nuc" else s.amax(-1) if ord == 2 else s.amin(-1)
        return _keep(out, (d0, d1), x.ndim) if keepdim else out
    if ord in (1, -1, math.inf, -math.inf):
        summed, other = (d0, d1) if ord in (1, -1) else (d1, d0)  # 1: columns, inf: rows
        sums = x.abs().sum(summed, keepdims=True)
        out = sums.amax(other, True) if ord > 0 else sums.amin(other, True)
        return out if keepdim else out.squeeze((d0, d1))
    raise ValueError(f"linalg.matrix_norm: ord must be 'fro', 'nuc', 1, -1, 2, -2, inf or "
                     f"-inf, got {ord!r}")


def _keep(out, dims, ndim):
    for d in sorted(dims):
        out = out.unsqueeze(d)
    return out


def norm(x, ord=None, dim=None, keepdim=False, *, dtype=None):
    """torch.linalg.norm: a vector norm over one axis (or, with ord=None and dim=None, over
    every entry), a matrix norm over two; with dim=None an ord applies to a 1-D (vector)
    or 2-D (matrix) input."""
    x = _t(x)
    if isinstance(dim, int):
        dim = (dim,)
    if dim is None:
        if ord is None:
            return vector_norm(x.reshape(-1), 2, None, False, dtype=dtype).reshape(
                (1,) * x.ndim if keepdim else ())
        if x.ndim not in (1, 2):
            raise ValueError(f"linalg.norm: with ord={ord!r} and dim=None the input must be "
                             f"1-D or 2-D, got shape {x.shape}")
        dim = tuple(range(x.ndim))
    if len(dim) == 1:
        return vector_norm(x, 2 if ord is None else ord, dim, keepdim, dtype=dtype)
    if len(dim) == 2:
        return matrix_norm(x, "fro" if ord is None else ord, dim, keepdim, dtype=dtype)
    raise ValueError(f"linalg.norm: dim must name 1 or 2 axes, got {dim!r}")


def cond(x, p=None):
    """The condition number: ‖A‖ ‖A⁻¹‖ in the norm p (None or 2: s_max / s_min)."""
    x = _floating(x, "cond", min_dims=2)
    if p in (None, 2, -2):
        s = svdvals(x)
        ratio = s.amax(-1) / s.amin(-1)
        return ratio if p != -2 else 1 / ratio
    return matrix_norm(x, p) * matrix_norm(inv(x), p)


# ---- products -----------------------------------------------------------------------------
def vecdot(x, y, *, dim=-1):
    """Σ x·y over `dim` (real tensors; broadcast), as torch.linalg.vecdot."""
    return (_t(x) * _t(y)).sum(dim)


def cross(a, b, *, dim=-1):
    """The cross product of 3-vectors along `dim` (broadcast), as torch.linalg.cross."""
    a, b = _t(a), _t(b)
    if a.shape[dim] != 3 or b.shape[dim] != 3:
        raise ValueError(f"linalg.cross: dim {dim} must have size 3, got shapes {a.shape} "
                         f"and {b.shape}")
    a, b = a.movedim(dim, -1), b.movedim(dim, -1)
    a0, a1, a2 = a.unbind(-1)
    b0, b1, b2 = b.unbind(-1)
    out = stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], -1)
    return out.movedim(-1, dim)


def diagonal(x, *, offset=0, dim1=-2, dim2=-1):
    return _t(x).diagonal(offset, dim1, dim2)


# ---- decompositions and solves (Functions in ops/linalg.py) ---------------------------------
def det(x):
    return ops.Det.apply(_square(x, "det"))


def inv(x):
    return ops.Inv.apply(_square(x, "inv"))


def solve(a, b, *, left=True):
    """X with A X = B (left=True) or X A = B; B [..., n] (a vector per matrix, as torch:
    when B.ndim is 1 or B's shape is A's batch shape plus n) or [..., n, k]."""
    a = _square(a, "solve")
    b = _floating(b, "solve", min_dims=1)._cast_to(a.dtype)
    a, b = a._pair(b)
    if not left:  # X A = B  <=>  Aᵀ Xᵀ = Bᵀ
        return solve(a.mT, b.mT).mT
    vector = b.ndim == 1 or (b.ndim == a.ndim - 1 and b.shape == a.shape[:-1])
    if b.shape[-1 if vector else -2] != a.shape[-1]:
        raise ValueError(f"linalg.solve: A {a.shape} and B {b.shape} do not match")
    if vector:
        return ops.Solve.apply(a, b.unsqueeze(-1)).squeeze(-1)
    return ops.Solve.apply(a, b)


def cholesky(x, *, upper=False):
    """Lower L with A = L Lᵀ (upper=True: U = Lᵀ); A symmetric positive definite."""
    out = ops.Cholesky.apply(_square(x, "cholesky"))
    return out.mT if upper else out


def qr(x, mode="reduced"):
    """(Q, R) with A = Q R, Q with orthonormal columns, R upper triangular; mode "reduced"
    (the gradient: m >= n) or "r" (R only; Q is an empty tensor, as in PyTorch)."""
    x = _floating(x, "qr", min_dims=2)
    if mode not in ("reduced", "r"):
        raise ValueError(f"linalg.qr: mode must be 'reduced' or 'r', got {mode!r} ('complete' "
                         "is not supported)")
    r = ops.QR.apply(x, part="R")
    if mode == "r":
        return x._make(x.data[..., :0, :0], None), r
    return ops.QR.apply(x, part="Q"), r


def eigh(x, UPLO="L"):
    """(eigenvalues ascending, eigenvectors as columns) of a symmetric matrix; only its
    lower triangle is read (UPLO="L"). The gradient is finite for distinct eigenvalues."""
    if UPLO != "L":
        raise ValueError("linalg.eigh: only UPLO='L' is supported")
    x = _square(x, "eigh")
    return ops.Eigh.apply(x, part="L"), ops.Eigh.apply(x, part="V")


def eigvalsh(x, UPLO="L"):
    return eigh(x, UPLO)[0]


def svd(x, full_matrices=True):
    """(U, S, Vh) with A = U diag(S) Vh. The reduced form (full_matrices=False); for a
    square matrix the full one is the same. A non-square full SVD is not supported."""
    x = _floating(x, "svd", min_dims=2)
    if full_matrices and x.shape[-1] != x.shape[-2]:
        raise ValueError(f"linalg.svd: full_matrices=True of a non-square {x.shape} matrix "
                         "is not supported; pass full_matrices=False (the reduced SVD)")
    return tuple(ops.SVD.apply(x, part=p) for p in ("U", "S", "Vh"))


def svdvals(x):
    """The singular values, descending; gradient U diag(gS) Vh."""
    return ops.SVD.apply(_floating(x, "svdvals", min_dims=2), part="S")


def matrix_rank(x, *, atol=None, rtol=None, hermitian=False):
    """The number of singular values above max(atol, rtol · s_max) (int64, no gradient);
    rtol defaults to eps · max(m, n), as in PyTorch."""
    x = _floating(x, "matrix_rank", min_dims=2).detach()
    s = svdvals(x)
    if rtol is None:
        rtol = 0.0 if atol is not None and atol > 0 else np.finfo(x.dtype).eps * max(
            x.shape[-2:])
    tol = (s.amax(-1, keepdim=True) * rtol).clip(atol or 0.0, None)
    return (s > tol).to(dtype=np.int64).sum(-1)


__all__ = ["cholesky", "cond", "cross", "det", "diagonal", "eigh", "eigvalsh", "inv",
           "matmul", "matrix_norm", "matrix_rank", "norm", "qr", "solve", "svd", "svdvals",
           "vecdot", "vector_norm"]

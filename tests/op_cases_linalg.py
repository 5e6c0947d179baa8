"""tg.linalg as cases of the one op harness (tests/harness.py): gradcheck in float64,
float32, every device (the CuPy emulator offers only the cupy.linalg names CuPy 14 has) and
PyTorch's torch.linalg at float32. LINALG_CASES joins CASES in tests/op_cases.py.

Each input is built to keep the maths well posed under gradcheck's perturbations: small
entries added to a dominant diagonal (invertible, far from singular), a symmetric part of
disjoint Gershgorin discs (distinct eigenvalues), distinct well-separated singular values.
Decompositions whose factors are fixed only up to signs (eigenvectors, singular vectors)
enter through sign-free functions of them (squares, products that rebuild the matrix)."""

import math

import numpy as np
from conftest import arrays, distinct_arrays, floats
from hypothesis import strategies as st
from op_cases_tensor import AWAY, table

import tinygen as tg

SMALL = floats(-1, 1)
TINY = floats(-0.2, 0.2)
# QR: Householder's R_kk takes the sign opposite to a_kk unless the column below is exactly
# 0 (then the reflection is skipped): LAPACK's QR jumps there, so QR inputs avoid zeros (as
# do the norms with |x|, whose kink is at 0)
TINY_AWAY = st.one_of(floats(-0.2, -0.05), floats(0.05, 0.2))
DISTINCT = distinct_arrays((3, 4)).map(lambda a: [a])  # no ties between |x| entries + 10


def _torch():
    import torch

    return torch


def lib(x):
    """tinygen.linalg for tinygen tensors, torch.linalg for torch tensors (one lambda each)."""
    return tg.linalg if isinstance(x, tg.Tensor) else _torch().linalg


def eye_like(x, n, scale=1.0):
    if isinstance(x, tg.Tensor):
        return tg.tensor(x._lift(np.eye(n) * scale).data)
    return _torch().eye(n, dtype=x.dtype) * scale


def dominant(a):
    """a + 4 I: entries of a in [-1, 1], so 3x3 rows are strictly diagonally dominant."""
    return a + eye_like(a, a.shape[-1], 4.0)


def spd(a):
    return a @ a.mT + eye_like(a, a.shape[-1], 3.0)


def separated(a):
    """(a + aᵀ)/2 + diag(0, 3, 6): Gershgorin discs of radius <= 0.4 apart, distinct."""
    spread = np.diag(np.arange(a.shape[-1]) * 3.0)
    const = a._lift(spread) if isinstance(a, tg.Tensor) else _torch().tensor(spread,
                                                                             dtype=a.dtype)
    return (a + a.mT) / 2 + const


def tall(a):
    """a (entries in [-0.2, 0.2]) + diag(6, 3, 1) padded: singular values near 6, 3, 1."""
    m, n = a.shape[-2:]
    base = np.zeros((m, n))
    k = min(m, n)
    base[range(k), range(k)] = [6.0, 3.0, 1.0, 0.5][:k]
    const = a._lift(base) if isinstance(a, tg.Tensor) else _torch().tensor(base, dtype=a.dtype)
    return a + const


def rebuild(u, s, vh):
    return (u * s[..., None, :]) @ vh


def inputs(*shapes, elements=SMALL):
    return st.tuples(*[arrays(s, elements) for s in shapes]).map(list)


def both(name, fn, strategy, **options):
    """One table case whose fn runs on tinygen and on torch (lib(x) picks the library)."""
    return table(name, fn, strategy, fn, **options)


LINALG_CASES = [
    both("linalg.det", lambda a: lib(a).det(dominant(a)), inputs((2, 3, 3))),
    both("linalg.inv", lambda a: lib(a).inv(dominant(a)), inputs((2, 3, 3))),
    both("linalg.solve", lambda a, b: lib(a).solve(dominant(a), b), inputs((2, 3, 3), (2, 3, 2))),
    # a vector right-hand side, and batch axes broadcast between A and B
    both("linalg.solve(vector)", lambda a, b: lib(a).solve(dominant(a), b),
         inputs((2, 3, 3), (2, 3))),
    both("linalg.solve(broadcast)", lambda a, b: lib(a).solve(dominant(a), b),
         inputs((2, 1, 3, 3), (4, 3, 2))),
    both("linalg.solve(left=False)", lambda a, b: lib(a).solve(dominant(a), b, left=False),
         inputs((3, 3), (2, 3))),
    both("linalg.cholesky", lambda a: lib(a).cholesky(spd(a)), inputs((2, 3, 3))),
    both("linalg.cholesky(upper)", lambda a: lib(a).cholesky(spd(a), upper=True),
         inputs((3, 3))),
    both("linalg.qr(Q)", lambda a: lib(a).qr(tall(a))[0], inputs((2, 4, 3), elements=TINY_AWAY)),
    both("linalg.qr(R)", lambda a: lib(a).qr(tall(a))[1], inputs((2, 4, 3), elements=TINY_AWAY)),
    both("linalg.qr(Q, wide)", lambda a: lib(a).qr(tall(a))[0],
         inputs((2, 3, 5), elements=TINY_AWAY)),
    both("linalg.qr(R, wide)", lambda a: lib(a).qr(tall(a))[1], inputs((3, 5), elements=TINY_AWAY)),
    both("linalg.qr(square, Q and R)", lambda a: lib(a).qr(tall(a))[0] * 2 + lib(a).qr(
        tall(a))[1], inputs((3, 3), elements=TINY_AWAY)),
    both("linalg.eigh(values)", lambda a: lib(a).eigh(separated(a))[0],
         inputs((2, 3, 3), elements=floats(-0.2, 0.2))),
    both("linalg.eigh(vectors²)", lambda a: lib(a).eigh(separated(a))[1] ** 2,
         inputs((2, 3, 3), elements=floats(-0.2, 0.2))),
    both("linalg.eigvalsh", lambda a: lib(a).eigvalsh(separated(a)),
         inputs((3, 3), elements=floats(-0.2, 0.2))),
    both("linalg.svdvals", lambda a: lib(a).svdvals(tall(a)), inputs((2, 4, 3), elements=TINY)),
    both("linalg.svd(U²)", lambda a: lib(a).svd(tall(a), full_matrices=False)[0] ** 2,
         inputs((2, 4, 3), elements=TINY)),
    both("linalg.svd(Vh², wide)", lambda a: lib(a).svd(tall(a), full_matrices=False)[2] ** 2,
         inputs((2, 3, 5), elements=TINY)),
    both("linalg.svd(U², wide)", lambda a: lib(a).svd(tall(a), full_matrices=False)[0] ** 2,
         inputs((3, 5), elements=TINY)),
    both("linalg.svd(U S Vh)", lambda a: rebuild(*lib(a).svd(tall(a), full_matrices=False)),
         inputs((4, 3), elements=TINY)),
    both("linalg.cond", lambda a: lib(a).cond(tall(a)), inputs((2, 3, 3), elements=TINY)),
    # norms: compositions; every ord, a tuple of dims, keepdim
    both("linalg.vector_norm", lambda x: lib(x).vector_norm(x), inputs((3, 4), elements=AWAY)),
    # a zero vector: gradient 0 as in PyTorch (not sqrt's inf · 0)
    both("linalg.vector_norm(zero rows)", lambda x: lib(x).vector_norm(x, dim=-1),
         inputs((3, 4), elements=AWAY).map(lambda xs: [xs[0] * [[1], [0], [1]]])),
    both("linalg.vector_norm(3, dim=-1)", lambda x: lib(x).vector_norm(x, 3, dim=-1),
         inputs((3, 4), elements=AWAY)),
    both("linalg.vector_norm(0.5)", lambda x: lib(x).vector_norm(x, 0.5),
         inputs((3, 4), elements=AWAY)),
    both("linalg.vector_norm(inf)", lambda x: lib(x).vector_norm(x - 10, math.inf, dim=(0, 1)),
         DISTINCT),
    both("linalg.vector_norm(-inf)", lambda x: lib(x).vector_norm(x + 10, -math.inf, dim=1,
                                                                  keepdim=True), DISTINCT),
    both("linalg.vector_norm(0)", lambda x: lib(x).vector_norm(x, 0, dim=1), inputs(
        (3, 4), elements=AWAY).map(lambda xs: [xs[0] * [[1, 0, 1, 1], [0, 0, 0, 0], [1] * 4]])),
    both("linalg.vector_norm(1, keepdim)", lambda x: lib(x).vector_norm(
        x, 1, dim=(0, 2), keepdim=True), inputs((2, 3, 2), elements=AWAY)),
    *[both(f"linalg.matrix_norm({o})", lambda x, o=o: lib(x).matrix_norm(tall(x), o),
           inputs((2, 4, 3), elements=TINY_AWAY)) for o in ["fro", "nuc", 1, -1, 2, -2]],
    *[both(f"linalg.matrix_norm({o}, dim, keepdim)", lambda x, o=o: lib(x).matrix_norm(
        tall(x), o, dim=(2, 1), keepdim=True), inputs((2, 4, 3), elements=TINY_AWAY))
      for o in [math.inf, -math.inf, 1]],
    both("linalg.norm", lambda x: lib(x).norm(x), inputs((2, 3, 4), elements=AWAY)),
    both("linalg.norm(ord, matrix)", lambda x: lib(x).norm(tall(x), 1),
         inputs((4, 3), elements=TINY_AWAY)),
    both("linalg.norm(nuc, dim)", lambda x: lib(x).norm(tall(x), "nuc", dim=(-1, -2)),
         inputs((4, 3), elements=TINY_AWAY)),
    both("linalg.vecdot", lambda x, y: lib(x).vecdot(x, y), inputs((2, 3), (3,))),
    both("linalg.cross", lambda a, b: lib(a).cross(a, b), inputs((2, 3), (1, 3))),
    both("linalg.cross(dim=0)", lambda a: lib(a).cross(a, a.flip(1), dim=0), inputs((3, 2))),
]

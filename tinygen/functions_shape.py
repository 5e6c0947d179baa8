"""Function forms of the shape, indexing and contraction ops, as `torch.*` has them
(`tg.flip(x, dims)` is `x.flip(dims)`), plus those with no method: einsum, outer, meshgrid.
Each is written out; every public name here is exported as `tg.<name>`."""

import numpy as _np

from tinygen import ops as _ops
from tinygen.functions import _t
from tinygen.ops.einsum import parse_equation as _parse_einsum
from tinygen.tensor import Tensor as _Tensor


# ---- shape and indexing -------------------------------------------------------------------
def reshape(x, shape):
    return _t(x).reshape(shape)


def flatten(x, start_dim=0, end_dim=-1):
    return _t(x).flatten(start_dim, end_dim)


def transpose(x, dim0, dim1):
    return _t(x).transpose(dim0, dim1)


def permute(x, dims):
    return _t(x).permute(dims)


def squeeze(x, dim=None):
    return _t(x).squeeze(dim)


def unsqueeze(x, dim):
    return _t(x).unsqueeze(dim)


def flip(x, dims):
    return _t(x).flip(dims)


def roll(x, shifts, dims=None):
    return _t(x).roll(shifts, dims)


def split(x, split_size_or_sections, dim=0):
    return _t(x).split(split_size_or_sections, dim)


def chunk(x, chunks, dim=0):
    return _t(x).chunk(chunks, dim)


def unbind(x, dim=0):
    return _t(x).unbind(dim)


def tile(x, dims):
    return _t(x).tile(dims)


def repeat_interleave(x, repeats, dim=None):
    return _t(x).repeat_interleave(repeats, dim)


def tril(x, diagonal=0):
    return _t(x).tril(diagonal)


def triu(x, diagonal=0):
    return _t(x).triu(diagonal)


def diag(x, diagonal=0):
    return _t(x).diag(diagonal)


def diagonal(x, offset=0, dim1=0, dim2=1):
    return _t(x).diagonal(offset, dim1, dim2)


def narrow(x, dim, start, length):
    return _t(x).narrow(dim, start, length)


def movedim(x, source, destination):
    return _t(x).movedim(source, destination)


def broadcast_to(x, shape):
    return _t(x).expand(shape)


def gather(x, dim, index):
    return _t(x).gather(dim, index)


def take_along_dim(x, indices, dim):
    return _t(x).gather(dim, indices)


def scatter(x, dim, index, src):
    return _t(x).scatter(dim, index, src)


def scatter_add(x, dim, index, src):
    return _t(x).scatter_add(dim, index, src)


def index_select(x, dim, index):
    return _t(x).index_select(dim, index)


def masked_select(x, mask):
    return _t(x).masked_select(mask)


def nonzero(x, as_tuple=False):
    return _t(x).nonzero(as_tuple)


def einsum(equation, *operands):
    """Sums of products over named axes, as torch.einsum: einsum("bhqd,bhkd->bhqk", q, k)
    is attention's q kᵀ, einsum("bi,ij,bj->b", x, W, y) a bilinear form, "i,j->ij" an outer
    product, "...ij,...jk->...ik" a batched matmul, "ii->" a trace. Differentiable in every
    operand (tinygen/ops/einsum.py says what is covered)."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    tensors = [_t(x) for x in operands]
    terms, out = _parse_einsum(equation, [x.ndim for x in tensors])
    for x in tensors[1:]:
        tensors[0], _ = tensors[0]._pair(x)
    tensors = [tensors[0]] + [x._cast_to(tensors[0].dtype) for x in tensors[1:]]
    return _ops.Einsum.apply(*tensors, terms=terms, out=out)


def outer(a, b):
    """[n], [m] -> [n, m]: a[i] · b[j]."""
    return _t(a).reshape(-1, 1) * _t(b).reshape(1, -1)


def meshgrid(*tensors, indexing="ij"):
    """Grids from 1-D tensors (broadcast views, so gradients flow), as torch.meshgrid."""
    tensors = [_t(t) for t in (tensors[0] if len(tensors) == 1 and not isinstance(
        tensors[0], _Tensor) else tensors)]
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    shape = tuple(t.numel() for t in tensors)
    n = len(tensors)
    grids = [t.reshape([-1 if i == k else 1 for i in range(n)]).expand(shape)
             for k, t in enumerate(tensors)]
    if indexing == "xy" and n >= 2:  # Cartesian: the first two axes swapped
        grids = [g.transpose(0, 1) for g in grids]
    return tuple(grids)


def is_tensor(x):
    return isinstance(x, _Tensor)


def numel(x):
    return int(_np.prod(_t(x).shape))

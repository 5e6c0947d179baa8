"""Function forms of tensor ops, as `torch.*` has them: `tg.exp(x)` is `x.exp()`, and so on.
Each is written out (no generated wrappers), so a reader finds every name here. Numbers
and arrays are accepted where PyTorch accepts them and become tensors first. Every public
name here is exported as `tg.<name>` (private imports carry a leading underscore)."""

import numpy as _np

from tinygen import ops as _ops
from tinygen.ops.einsum import parse_equation as _parse_einsum
from tinygen.tensor import Tensor as _Tensor
from tinygen.tensor import cat, stack, where  # noqa: F401  (tg.cat, tg.stack, tg.where)


def _t(x):
    return x if isinstance(x, _Tensor) else _Tensor(x)


def exp(x):
    return _t(x).exp()


def log(x):
    return _t(x).log()


def sqrt(x):
    return _t(x).sqrt()


def rsqrt(x):
    return _t(x).rsqrt()


def tanh(x):
    return _t(x).tanh()


def sigmoid(x):
    return _t(x).sigmoid()


def relu(x):
    return _t(x).relu()


def abs(x):
    return _t(x).abs()


def sin(x):
    return _t(x).sin()


def cos(x):
    return _t(x).cos()


def tan(x):
    return _t(x).tan()


def asin(x):
    return _t(x).asin()


def acos(x):
    return _t(x).acos()


def atan(x):
    return _t(x).atan()


def atan2(y, x):
    return _t(y).atan2(x)


def sinh(x):
    return _t(x).sinh()


def cosh(x):
    return _t(x).cosh()


def floor(x):
    return _t(x).floor()


def ceil(x):
    return _t(x).ceil()


def round(x, decimals=0):
    return _t(x).round(decimals)


def trunc(x):
    return _t(x).trunc()


def sign(x):
    return _t(x).sign()


def log2(x):
    return _t(x).log2()


def log10(x):
    return _t(x).log10()


def log1p(x):
    return _t(x).log1p()


def expm1(x):
    return _t(x).expm1()


def exp2(x):
    return _t(x).exp2()


def square(x):
    return _t(x).square()


def isnan(x):
    return _t(x).isnan()


def isinf(x):
    return _t(x).isinf()


def isfinite(x):
    return _t(x).isfinite()


def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    return _t(x).nan_to_num(nan, posinf, neginf)


def maximum(a, b):
    return _t(a).maximum(b)


def minimum(a, b):
    return _t(a).minimum(b)


def clamp(x, min=None, max=None):
    return _t(x).clamp(min, max)


def lerp(x, end, weight):
    return _t(x).lerp(end, weight)


def logaddexp(a, b):
    return _t(a).logaddexp(b)


def pow(x, exponent):
    return _t(x) ** exponent


def remainder(a, b):
    return _t(a) % b


def fmod(a, b):
    return _t(a).fmod(b)


def div(a, b, *, rounding_mode=None):
    return _t(a).div(b, rounding_mode=rounding_mode)


def logical_not(x):
    return _t(x).logical_not()


def logical_and(a, b):
    return _t(a).logical_and(b)


def logical_or(a, b):
    return _t(a).logical_or(b)


def logical_xor(a, b):
    return _t(a).logical_xor(b)


def matmul(a, b):
    return _t(a) @ b


clip = clamp
arctan2 = atan2


# ---- reductions and orderings -------------------------------------------------------------
def sum(x, dim=None, keepdim=False):
    return _t(x).sum(dim, keepdim)


def mean(x, dim=None, keepdim=False):
    return _t(x).mean(dim, keepdim)


def prod(x, dim=None, keepdim=False):
    return _t(x).prod(dim, keepdim)


def amax(x, dim=None, keepdim=False):
    return _t(x).max(dim, keepdim)


def amin(x, dim=None, keepdim=False):
    return _t(x).min(dim, keepdim)


def argmax(x, dim=None, keepdim=False):
    return _t(x).argmax(dim, keepdim)


def argmin(x, dim=None, keepdim=False):
    return _t(x).argmin(dim, keepdim)


def logsumexp(x, dim, keepdim=False):
    return _t(x).logsumexp(dim, keepdim)


def cumsum(x, dim):
    return _t(x).cumsum(dim)


def cumprod(x, dim):
    return _t(x).cumprod(dim)


def sort(x, dim=-1, descending=False):
    return _t(x).sort(dim, descending)


def argsort(x, dim=-1, descending=False):
    return _t(x).argsort(dim, descending)


def topk(x, k, dim=-1, largest=True, sorted=True):
    return _t(x).topk(k, dim, largest)


def norm(x, p=2, dim=None, keepdim=False):
    return _t(x).norm(p, dim, keepdim)


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
    product. Differentiable in every operand (tinygen/ops/einsum.py says what is covered)."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    terms, out = _parse_einsum(equation, len(operands))
    tensors = [_t(x) for x in operands]
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

"""Function forms of the elementwise and reduction ops, as `torch.*` has them: `tg.exp(x)`
is `x.exp()`, and so on (shape and indexing ops: functions_shape.py). Each is written out
(no generated wrappers), so a reader finds every name here. Numbers
and arrays are accepted where PyTorch accepts them and become tensors first. Every public
name here is exported as `tg.<name>` (private imports carry a leading underscore)."""

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


def erf(x):
    return _t(x).erf()


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


def vector_norm(x, ord=2, dim=None, keepdim=False):
    return _t(x).norm(ord, dim, keepdim)


def cummax(x, dim):
    return _t(x).cummax(dim)


def cummin(x, dim):
    return _t(x).cummin(dim)


def scatter_reduce(x, dim, index, src, reduce, *, include_self=True):
    return _t(x).scatter_reduce(dim, index, src, reduce, include_self=include_self)


def sort(x, dim=-1, descending=False):
    return _t(x).sort(dim, descending)


def argsort(x, dim=-1, descending=False):
    return _t(x).argsort(dim, descending)


def topk(x, k, dim=-1, largest=True, sorted=True):
    return _t(x).topk(k, dim, largest)


def norm(x, p=2, dim=None, keepdim=False):
    return _t(x).norm(p, dim, keepdim)

"""Tensor methods, elementwise math: each a call into a Function of `tinygen.ops` or a
one-line composition of them. Float math on a bool/integer tensor computes in float32, as
PyTorch does (`self._float()`)."""

import math

import numpy as np

from tinygen import ops
from tinygen.backend import get_array_module


class ElementwiseMethods:
    """Mixed into Tensor (tensor.py): unary math, two-tensor math, tests of values."""

    __slots__ = ()

    # ---- primitives with their own backward -------------------------------------------
    def exp(self):
        return ops.Exp.apply(self._float())

    def log(self):
        return ops.Log.apply(self._float())

    def sqrt(self):
        return ops.Sqrt.apply(self._float())

    def tanh(self):
        return ops.TanhFunction.apply(self._float())

    def sigmoid(self):
        return ops.SigmoidFunction.apply(self._float())

    def relu(self):
        return ops.ReLUFunction.apply(self)

    def abs(self):
        return ops.Abs.apply(self)

    def sin(self):
        return ops.Sin.apply(self._float())

    def cos(self):
        return ops.Cos.apply(self._float())

    def asin(self):
        return ops.Asin.apply(self._float())

    def acos(self):
        return ops.Acos.apply(self._float())

    def atan(self):
        return ops.Atan.apply(self._float())

    def atan2(self, other):
        """The angle of the point (other, self): atan2(y=self, x=other)."""
        y, x = self._float()._pair(other)
        return ops.Atan2.apply(y, x._float())

    arctan2 = atan2

    def log1p(self):
        return ops.Log1p.apply(self._float())  # exact near 0, where log(1 + x) rounds to 0

    def erf(self):
        return ops.Erf.apply(self._float())

    def expm1(self):
        return ops.Expm1.apply(self._float())

    # piecewise-constant functions: gradient 0 everywhere (as in PyTorch)
    def floor(self):
        return ops.Floor.apply(self)

    def ceil(self):
        return ops.Ceil.apply(self)

    def round(self, decimals=0):
        if decimals:
            return (self * 10.0 ** decimals).round() / 10.0 ** decimals
        return ops.Round.apply(self)  # halves to even, as in PyTorch

    def trunc(self):
        return ops.Trunc.apply(self)

    def sign(self):
        return ops.Sign.apply(self)

    # ---- compositions -----------------------------------------------------------------
    def tan(self):
        return self.sin() / self.cos()

    def sinh(self):
        return (self.exp() - (-self).exp()) * 0.5

    def cosh(self):
        return (self.exp() + (-self).exp()) * 0.5

    def rsqrt(self):
        return self._float() ** -0.5

    def square(self):
        return self * self

    def log2(self):
        return self.log() * (1 / math.log(2))

    def log10(self):
        return self.log() * (1 / math.log(10))

    def exp2(self):
        return (self._float() * math.log(2)).exp()

    def maximum(self, other):
        """Elementwise max of two tensors; a tie splits the gradient equally (as PyTorch)."""
        return ops.Maximum.apply(*self._pair(other))

    def minimum(self, other):
        return ops.Minimum.apply(*self._pair(other))

    def clip(self, min=None, max=None):
        """Clamp into [min, max]; the bounds may be numbers or tensors. As in PyTorch, x
        keeps the gradient where min <= x <= max, a bound gets it where it binds."""
        if min is None and max is None:
            raise ValueError("clip: at least one of min and max must be given (PyTorch "
                             "raises too)")
        if not hasattr(min, "shape") and not hasattr(max, "shape"):
            return ops.Clip.apply(self, lo=min, hi=max)
        out = self
        if max is not None:
            x, hi = out._pair(max)
            out = ops.Where.apply(hi, x, cond=x.data > hi.data)
        if min is not None:
            x, lo = out._pair(min)
            out = ops.Where.apply(lo, x, cond=self.data < lo.data)
        return out

    clamp = clip

    def lerp(self, end, weight):
        """self + weight·(end − self)."""
        return self + (end - self) * weight

    def logaddexp(self, other):
        """log(eˢᵉˡᶠ + eᵒᵗʰᵉʳ) without overflow: shift both by their maximum."""
        m = self.maximum(other).detach()
        return m + ((self - m).exp() + (other - m).exp()).log()

    # ---- tests of values (no gradient) ------------------------------------------------
    def isnan(self):
        return self._make(self.data != self.data, None)

    def isinf(self):
        return self._make(abs(self.data) == np.inf, None)

    def isfinite(self):
        return self._make(abs(self.data) < np.inf if self.data.dtype.kind in "fc"
                          else self.data == self.data, None)

    def nan_to_num(self, nan=0.0, posinf=None, neginf=None):
        """NaN → nan, ±inf → the dtype's largest/smallest (or posinf/neginf); the replaced
        entries get no gradient."""
        if self.data.dtype.kind not in "fc":
            return self
        info = np.finfo(self.data.dtype)
        out = self.masked_fill(self.isnan(), nan)
        out = out.masked_fill(self.data == np.inf, info.max if posinf is None else posinf)
        return out.masked_fill(self.data == -np.inf, info.min if neginf is None else neginf)

    def logical_not(self):
        return self._make(self.data == 0, None)

    def logical_and(self, other):
        return self._raw(other, lambda a, b: (a != 0) & (b != 0))

    def logical_or(self, other):
        return self._raw(other, lambda a, b: (a != 0) | (b != 0))

    def logical_xor(self, other):
        return self._raw(other, lambda a, b: (a != 0) ^ (b != 0))

    def fmod(self, other):
        """C's remainder: the sign of the dividend (`%` is Python's: the divisor's)."""
        a, b = self._pair(other)
        if a.data.dtype.kind in "fc":
            return a - b * (a / b).trunc()
        return self._raw(other, lambda a, b: get_array_module(a).fmod(a, b))

    def remainder(self, other):
        return self % other

    def div(self, other, *, rounding_mode=None):
        """`/` (None), or rounded towards zero ("trunc") or down ("floor"), as PyTorch."""
        if rounding_mode is None:
            return self / other
        if rounding_mode not in ("trunc", "floor"):
            raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', "
                             f"got {rounding_mode!r}")
        a, b = self._pair(other)
        if a.data.dtype.kind in "fc":
            q = a / b
            return q.trunc() if rounding_mode == "trunc" else q.floor()
        if rounding_mode == "floor":
            return a // b
        return self._raw(other, lambda a, b: (a - get_array_module(a).fmod(a, b)) // b)

    divide = div

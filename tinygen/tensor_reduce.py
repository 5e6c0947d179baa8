"""Tensor methods, reductions, scans and orderings. Every one takes PyTorch's `dim`/`keepdim`
as well as NumPy's `axis`/`keepdims`."""

import math

import numpy as np

from tinygen import ops
from tinygen.backend import get_array_module


def _axis_alias(axis, keepdims, dim, keepdim):
    """Accept PyTorch's dim/keepdim as well as NumPy's axis/keepdims."""
    return (axis if dim is None else dim), (keepdims if keepdim is None else keepdim)


class ReductionMethods:
    """Mixed into Tensor (tensor.py)."""

    __slots__ = ()

    def _reduce_axis(self, axis):
        """A 0-d tensor accepts axis 0 and -1, as in PyTorch (there is nothing to reduce)."""
        if self.ndim == 0 and axis is not None:
            for a in (axis,) if isinstance(axis, int) else axis:
                if a not in (0, -1):
                    raise ValueError(f"axis {a} is out of range for a 0-d tensor")
            return None
        return axis

    def sum(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        axis, keepdims = _axis_alias(axis, keepdims, dim, keepdim)
        return ops.Sum.apply(self, axis=self._reduce_axis(axis), keepdims=keepdims)

    def mean(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """The mean; of a bool/integer tensor in float32 (PyTorch raises there)."""
        axis, keepdims = _axis_alias(axis, keepdims, dim, keepdim)
        return ops.Mean.apply(self._float(), axis=self._reduce_axis(axis), keepdims=keepdims)

    def var(self, axis=None, keepdims=False, ddof=0, *, dim=None, keepdim=None,
            correction=None, unbiased=None):
        """Σ(x − mean)² / (N − ddof). The default ddof=0 is NumPy's (PyTorch's default is
        correction=1: pass correction= or unbiased= to choose). N − ddof <= 0 gives NaN or
        inf, as PyTorch does."""
        axis, keepdims = _axis_alias(axis, keepdims, dim, keepdim)
        if correction is not None:
            ddof = correction
        elif unbiased is not None:
            ddof = int(unbiased)
        x = self._float()
        axis = self._reduce_axis(axis)
        centered = x - x.mean(axis, keepdims=True)
        total = (centered * centered).sum(axis, keepdims=keepdims)
        n = x.data.size // max(total.data.size, 1) if x.data.size else 0
        return total * (1 / (n - ddof) if n > ddof else math.inf)  # 0·inf = NaN, as torch

    def std(self, axis=None, keepdims=False, ddof=0, *, dim=None, keepdim=None,
            correction=None, unbiased=None):
        """√var (same arguments and default as `var`)."""
        return self.var(axis, keepdims, ddof, dim=dim, keepdim=keepdim,
                        correction=correction, unbiased=unbiased).sqrt()

    def max(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        axis, keepdims = _axis_alias(axis, keepdims, dim, keepdim)
        return ops.Max.apply(self, axis=self._reduce_axis(axis), keepdims=keepdims)

    def min(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        axis, keepdims = _axis_alias(axis, keepdims, dim, keepdim)
        return ops.Min.apply(self, axis=self._reduce_axis(axis), keepdims=keepdims)

    amax, amin = max, min

    def argmax(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """Index of the first maximum (of the flattened tensor when axis is None)."""
        axis, keepdims = _axis_alias(axis, keepdims, dim, keepdim)
        return self._make(self.data.argmax(axis=self._reduce_axis(axis), keepdims=keepdims),
                          None)

    def argmin(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        axis, keepdims = _axis_alias(axis, keepdims, dim, keepdim)
        return self._make(self.data.argmin(axis=self._reduce_axis(axis), keepdims=keepdims),
                          None)

    def any(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """A bool tensor (use `bool(t.any())` or `if t.any():` for a Python bool)."""
        axis, keepdims = _axis_alias(axis, keepdims, dim, keepdim)
        return self._make(self.data.any(axis=self._reduce_axis(axis), keepdims=keepdims), None)

    def all(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        axis, keepdims = _axis_alias(axis, keepdims, dim, keepdim)
        return self._make(self.data.all(axis=self._reduce_axis(axis), keepdims=keepdims), None)

    def prod(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        axis, keepdims = _axis_alias(axis, keepdims, dim, keepdim)
        return ops.Prod.apply(self, axis=self._reduce_axis(axis), keepdims=keepdims)

    def logsumexp(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """log Σ eˣ, shifted by the (constant) maximum so that nothing overflows."""
        axis, keepdims = _axis_alias(axis, keepdims, dim, keepdim)
        x = self._float()
        m = x.max(axis, keepdims=True).detach()
        m = m.masked_fill(m.isinf(), 0.0)  # all −inf (or +inf): no shift, as torch
        out = (x - m).exp().sum(axis, keepdims=True).log() + m
        return out if keepdims else out.squeeze(axis) if axis is not None else out.reshape(())

    def norm(self, p=2, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """The vector p-norm over `axis` (all axes when None): tg.linalg.vector_norm ("fro"
        is p = 2, as in PyTorch's Tensor.norm)."""
        from tinygen.linalg import vector_norm  # linalg builds on Tensor: imported late

        axis, keepdims = _axis_alias(axis, keepdims, dim, keepdim)
        return vector_norm(self, 2 if p == "fro" else p, axis, keepdims)

    def softmax(self, axis=-1, *, dim=None):
        return ops.Softmax.apply(self._float(), axis=axis if dim is None else dim)

    def log_softmax(self, axis=-1, *, dim=None):
        return ops.LogSoftmax.apply(self._float(), axis=axis if dim is None else dim)

    # ---- scans --------------------------------------------------------------------------
    def cumsum(self, axis=None, *, dim=None):
        axis = self._axis(axis if dim is None else dim, "cumsum")
        return ops.Cumsum.apply(self, axis=axis)

    def cumprod(self, axis=None, *, dim=None):
        axis = self._axis(axis if dim is None else dim, "cumprod")
        return ops.Cumprod.apply(self, axis=axis)

    def cummax(self, dim):
        """(values, indices): the running maximum along `dim` and where it was reached (the
        latest position on ties, as PyTorch); the values are gathered, so they get the
        gradient."""
        return self._running(dim, "cummax", lambda d: d)

    def cummin(self, dim):
        return self._running(dim, "cummin", lambda d: -d.astype(np.int64) if d.dtype.kind in
                             "bu" else -d)

    def _running(self, dim, op, key):
        xp = get_array_module(self.data)
        if self.ndim == 0:
            return self * 1, self._make(xp.zeros((), dtype=np.int64), None)
        axis = self._axis(dim, op)
        # a Hillis-Steele scan of (value, position) pairs, log2(n) steps of one comparison
        # each; the later entry wins ties (PyTorch's latest position). CuPy has no
        # maximum.accumulate, so this one path serves NumPy and CuPy.
        best = xp.moveaxis(key(self.data), axis, -1).copy()
        n = best.shape[-1]
        indices = xp.broadcast_to(xp.arange(n), best.shape).copy()
        step = 1
        while step < n:
            later = best[..., step:] >= best[..., :-step]
            new_best = xp.where(later, best[..., step:], best[..., :-step])
            new_indices = xp.where(later, indices[..., step:], indices[..., :-step])
            best[..., step:], indices[..., step:] = new_best, new_indices
            step *= 2
        indices = xp.moveaxis(indices, -1, axis)
        indices = self._make(indices.astype(np.int64), None)
        return self.gather(axis, indices), indices

    # ---- orderings (values are gathered, so they get the gradient; indices do not) ------
    def sort(self, axis=-1, descending=False, *, dim=None, stable=True):
        """(values, indices) as torch.sort; ties keep their order (a stable sort)."""
        indices = self.argsort(axis, descending, dim=dim)
        if self.ndim == 0:
            return self * 1, indices
        return self.gather(axis if dim is None else dim, indices), indices

    def argsort(self, axis=-1, descending=False, *, dim=None, stable=True):
        xp = get_array_module(self.data)
        if self.ndim == 0:
            return self._make(xp.zeros((), dtype=np.int64), None)
        axis = self._axis(axis if dim is None else dim, "argsort")
        data = self.data
        if descending:  # negate (unsigned and bool widened first), so ties stay in order
            data = -(data.astype(np.int64) if data.dtype.kind in "bu" else data)
        return self._make(data.argsort(axis=axis, kind="stable").astype(np.int64), None)

    def topk(self, k, axis=-1, largest=True, sorted=True, *, dim=None):
        """(values, indices) of the k largest (or smallest) along `axis`, largest first."""
        axis = self._axis(axis if dim is None else dim, "topk")
        if not 0 <= k <= (self.shape[axis] if self.ndim else 1):
            raise ValueError(f"topk: k={k} is out of range for axis {axis} of shape "
                             f"{self.shape}")
        indices = self.argsort(axis, descending=largest)
        indices = indices[(slice(None),) * axis + (slice(0, k),)]
        return self.gather(axis, indices), indices

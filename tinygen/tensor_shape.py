"""Tensor methods that change shape or pick entries: views, permutations, indexing and the
gather/scatter family. Most are compositions of Reshape, Permute, Expand, GetItem and Cat."""

import itertools

import numpy as np

from tinygen import ops
from tinygen.backend import get_array_module


def _shape_args(shape):
    return tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], int) else shape


def _is_int(i):
    return isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_))


def _to_index(index):
    """Tensors inside an index become their arrays; lists become integer arrays."""
    if isinstance(index, tuple):
        return tuple(_to_index(i) for i in index)
    if hasattr(index, "_ctx"):  # a Tensor
        return index.data
    if isinstance(index, list):
        return np.asarray(index)
    return index


class ShapeMethods:
    """Mixed into Tensor (tensor.py)."""

    __slots__ = ()

    def _axis(self, axis, op, ndim=None):
        """A possibly negative axis as a positive one, or a clear error naming `op`."""
        ndim = self.ndim if ndim is None else ndim
        if not isinstance(axis, (int, np.integer)) or not -ndim <= axis < max(ndim, 1):
            raise ValueError(f"{op}: axis {axis} is out of range for a tensor of shape "
                             f"{self.shape}")
        return int(axis) % max(ndim, 1)

    def __getitem__(self, index):
        index = _to_index(index)
        if isinstance(index, tuple) and any(_is_int(i) for i in index) and any(
                hasattr(i, "dtype") for i in index):
            # PyTorch applies plain ints first (they select), then the index arrays; NumPy
            # counts ints as index arrays, which moves the indexed axes to the front
            first = tuple(slice(None) if hasattr(i, "dtype") else i for i in index)
            rest = tuple(i if hasattr(i, "dtype") or i is Ellipsis else slice(None)
                         for i in index if not _is_int(i))
            return ops.GetItem.apply(ops.GetItem.apply(self, index=first), index=rest)
        return ops.GetItem.apply(self, index=index)

    # ---- views ------------------------------------------------------------------------
    def reshape(self, *shape):
        shape = _shape_args(shape)
        try:
            return ops.Reshape.apply(self, shape=shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {self.shape} "
                             f"({self.numel()} elements) into {shape}") from None

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        if self.ndim == 0:
            return self.reshape(1)
        start, end = self._axis(start_dim, "flatten"), self._axis(end_dim, "flatten")
        return self.reshape(self.shape[:start] + (-1,) + self.shape[end + 1:])

    def unflatten(self, dim, sizes):
        dim = self._axis(dim, "unflatten")
        return self.reshape(self.shape[:dim] + tuple(sizes) + self.shape[dim + 1:])

    def permute(self, *axes):
        axes = _shape_args(axes)
        axes = tuple(self._axis(a, "permute") for a in axes)
        if sorted(axes) != list(range(self.ndim)):
            raise ValueError(f"permute: {axes} is not an ordering of the {self.ndim} axes "
                             f"of a tensor of shape {self.shape}")
        return ops.Permute.apply(self, axes=axes)

    @property
    def mT(self):
        """The matrix transpose of the last two axes (batched), as torch's Tensor.mT."""
        return self.transpose(-2, -1)

    def transpose(self, axis0=-2, axis1=-1):
        axes = list(range(self.ndim))
        a, b = self._axis(axis0, "transpose"), self._axis(axis1, "transpose")
        axes[a], axes[b] = axes[b], axes[a]
        return self.permute(axes)

    def movedim(self, source, destination):
        src = [self._axis(a, "movedim") for a in np.atleast_1d(source).tolist()]
        dst = [self._axis(a, "movedim") for a in np.atleast_1d(destination).tolist()]
        order = [a for a in range(self.ndim) if a not in src]
        for d, s in sorted(zip(dst, src)):
            order.insert(d, s)
        return self.permute(order)

    def squeeze(self, axis=None, *, dim=None):
        """Drop size-1 axes (all of them, or those named); a named axis of another size is
        left alone, as in PyTorch."""
        axis = axis if dim is None else dim
        if axis is None:
            return self.reshape([n for n in self.shape if n != 1])
        if self.ndim == 0:
            self._axis(axis if isinstance(axis, int) else axis[0], "squeeze", 1)
            return self.reshape(())
        axes = {self._axis(a, "squeeze") for a in ((axis,) if isinstance(axis, int) else axis)}
        return self.reshape([n for i, n in enumerate(self.shape) if i not in axes or n != 1])

    def unsqueeze(self, axis=None, *, dim=None):
        axis = self._axis(axis if dim is None else dim, "unsqueeze", self.ndim + 1)
        return self.reshape(self.shape[:axis] + (1,) + self.shape[axis:])

    def expand(self, *shape):
        """Broadcast to `shape`; -1 keeps a dimension's size (PyTorch's convention)."""
        shape = _shape_args(shape)
        lead = len(shape) - self.ndim
        shape = tuple(self.shape[i - lead] if n == -1 else n for i, n in enumerate(shape))
        return ops.Expand.apply(self, shape=shape)

    broadcast_to = expand

    def expand_as(self, other):
        return self.expand(other.shape)

    # ---- slicing compositions ---------------------------------------------------------
    def _slice(self, axis, start, stop, step=1):
        return self[(slice(None),) * axis + (slice(start, stop, step),)]

    def narrow(self, dim, start, length):
        dim = self._axis(dim, "narrow")
        return self._slice(dim, start, start + length)

    def flip(self, *dims):
        out = self
        for d in _shape_args(dims):
            out = out._slice(self._axis(d, "flip"), None, None, -1)
        return out

    def roll(self, shifts, dims=None):
        """Shift entries by `shifts` along `dims`, wrapping around (torch.roll)."""
        if dims is None:
            return self.flatten().roll(shifts, 0).reshape(self.shape)
        out = self
        for s, d in zip(np.atleast_1d(shifts).tolist(), np.atleast_1d(dims).tolist()):
            d = self._axis(d, "roll")
            s = s % max(self.shape[d], 1)
            if s:
                out = ops.Cat.apply(out._slice(d, -s, None), out._slice(d, 0, -s), axis=d)
        return out

    def split(self, split_size_or_sections, dim=0):
        """Pieces of `split_size` along `dim` (the last may be smaller), or of the sizes in
        a list, as torch.split."""
        dim = self._axis(dim, "split")
        n = self.shape[dim]
        if isinstance(split_size_or_sections, int):
            size = split_size_or_sections
            sizes = [min(size, n - i) for i in range(0, n, size)] if size > 0 else None
        else:
            sizes = list(split_size_or_sections)
        if sizes is None or sum(sizes) != n:
            raise ValueError(f"split: {split_size_or_sections} does not split axis {dim} "
                             f"of size {n}")
        starts = np.cumsum([0] + sizes).tolist()
        return tuple(self._slice(dim, a, b) for a, b in itertools.pairwise(starts))

    def chunk(self, chunks, dim=0):
        n = self.shape[self._axis(dim, "chunk")]
        return self.split(max(-(-n // chunks), 1), dim)

    def unbind(self, dim=0):
        dim = self._axis(dim, "unbind")
        return tuple(self[(slice(None),) * dim + (i,)] for i in range(self.shape[dim]))

    # ---- repeats ----------------------------------------------------------------------
    def repeat(self, *sizes):
        """Tile the tensor `sizes` times along each axis (torch.repeat = np.tile)."""
        sizes = _shape_args(sizes)
        if len(sizes) < self.ndim:
            raise ValueError(f"repeat: {len(sizes)} sizes for a tensor of {self.ndim} dims")
        x = self.reshape((1,) * (len(sizes) - self.ndim) + self.shape)
        # [.., n, ..] -> [.., r, n, ..] by broadcasting, then merge r and n
        inter = [d for n in x.shape for d in (1, n)]
        big = [d for r, n in zip(sizes, x.shape) for d in (r, n)]
        return x.reshape(inter).expand(big).reshape([r * n for r, n in zip(sizes, x.shape)])

    def tile(self, *dims):
        dims = _shape_args(dims)
        return self.repeat((1,) * (self.ndim - len(dims)) + tuple(dims))

    def repeat_interleave(self, repeats, dim=None):
        if dim is None:
            return self.flatten().repeat_interleave(repeats, 0)
        dim = self._axis(dim, "repeat_interleave")
        reps = repeats.data if hasattr(repeats, "_ctx") else repeats
        index = np.repeat(np.arange(self.shape[dim]), np.asarray(reps) if not isinstance(
            reps, int) else reps)
        return self.index_select(dim, index)

    # ---- triangles and diagonals ------------------------------------------------------
    def _band(self, keep):
        xp = get_array_module(self.data)
        i, j = xp.indices(self.shape[-2:], sparse=True)
        return ops.Where.apply(self, self._lift(0), cond=keep(j - i))

    def tril(self, diagonal=0):
        """Entries on and below the `diagonal`-th diagonal of the last two axes; zeros above."""
        return self._band(lambda offset: offset <= diagonal)

    def triu(self, diagonal=0):
        return self._band(lambda offset: offset >= diagonal)

    def diagonal(self, offset=0, dim1=0, dim2=1):
        """The diagonal of axes dim1, dim2 as the last axis (torch.diagonal)."""
        x = self.movedim((dim1, dim2), (-2, -1))
        n, m = x.shape[-2:]
        rows = np.arange(max(0, -offset), min(n, m - offset))
        return x[..., rows, rows + offset]

    def diag(self, diagonal=0):
        """A 1-D tensor -> the square matrix with it on a diagonal; 2-D -> its diagonal."""
        if self.ndim == 2:
            return self.diagonal(diagonal)
        n = self.shape[0] + abs(diagonal)
        rows = np.arange(self.shape[0]) + max(0, -diagonal)
        zeros = self._make(get_array_module(self.data).zeros((n, n), self.data.dtype), None)
        return zeros.index_put((rows, rows + diagonal), self)

    def index_put(self, indices, values):
        """A copy with out[indices] = values (out-of-place); both get gradients."""
        indices = tuple(np.asarray(i) for i in _to_index(tuple(indices)))
        flat = np.ravel_multi_index(indices, self.shape).reshape(-1)
        mask = get_array_module(self.data).zeros(self.shape, dtype=bool)
        mask[indices] = True
        base = ops.Where.apply(self._lift(0), self, cond=mask)  # the replaced entries: 0
        values = values.expand(np.broadcast_shapes(*(i.shape for i in indices)))
        return base.flatten().scatter_add(0, flat, values.reshape(-1)).reshape(self.shape)

    # ---- the gather family ------------------------------------------------------------
    def _index_arg(self, index, op):
        index = _to_index(index)
        xp = get_array_module(self.data)
        index = xp.asarray(index)
        if index.dtype.kind not in "iu":
            raise TypeError(f"{op}: index must be an integer tensor, got {index.dtype}")
        return index

    def gather(self, dim, index):
        """out[i][j] = self[i][index[i][j]] for dim=1 (torch.gather)."""
        return ops.Gather.apply(self, index=self._index_arg(index, "gather"),
                                axis=self._axis(dim, "gather"))

    take_along_dim = gather

    def scatter(self, dim, index, src):
        """A copy with out[i][index[i][j]] = src[i][j] for dim=1 (torch.scatter)."""
        a, b = self._pair(src)
        if b.ndim == 0:
            b = b.expand(np.shape(_to_index(index)))
        return ops.Scatter.apply(a, b, index=self._index_arg(index, "scatter"),
                                 axis=self._axis(dim, "scatter"))

    def scatter_add(self, dim, index, src):
        """A copy with out[i][index[i][j]] += src[i][j] for dim=1; repeats add up."""
        a, b = self._pair(src)
        return ops.ScatterAdd.apply(a, b, index=self._index_arg(index, "scatter_add"),
                                    axis=self._axis(dim, "scatter_add"))

    def scatter_reduce(self, dim, index, src, reduce, *, include_self=True):
        """torch.scatter_reduce with reduce "sum", "prod", "mean", "amax" or "amin"."""
        if reduce not in ("sum", "prod", "mean", "amax", "amin"):
            raise ValueError(f"scatter_reduce: reduce must be 'sum', 'prod', 'mean', 'amax' "
                             f"or 'amin', got {reduce!r}")
        a, b = self._pair(src)
        index = self._index_arg(index, "scatter_reduce")
        axis = self._axis(dim, "scatter_reduce")
        if reduce == "prod":
            return ops.ScatterProd.apply(a, b, index=index, axis=axis, include_self=include_self)
        if reduce in ("amax", "amin"):
            sign = 1 if reduce == "amax" else -1  # amin(x) = −amax(−x)
            base = a * sign
            if not include_self:  # the targets start empty (−inf), so x takes no part there
                xp = get_array_module(self.data)
                hit = xp.zeros(self.shape, dtype=bool)
                hit[ops.indexing.along_axis_index(xp, index, axis)] = True
                base = base.masked_fill(hit, -np.inf)
            return ops.ScatterMax.apply(base, b * sign, index=index, axis=axis) * sign
        base = a if include_self else a.scatter(axis, index, b * 0)
        total = base.scatter_add(axis, index, b)
        if reduce == "sum":
            return total
        ones = self._make(get_array_module(self.data).ones(index.shape, a.dtype), None)
        count = (self * 0 + (1 if include_self else 0)).detach().scatter_add(axis, index, ones)
        return total / count.clip(1, None)

    def index_select(self, dim, index):
        dim = self._axis(dim, "index_select")
        return self[(slice(None),) * dim + (self._index_arg(index, "index_select"),)]

    def masked_select(self, mask):
        """The entries where `mask` (broadcast to self) is True, as a 1-D tensor."""
        xp = get_array_module(self.data)
        return self[xp.broadcast_to(xp.asarray(_to_index(mask)), self.shape)]

    def masked_fill(self, mask, value):
        """Entries where `mask` is True become `value` (and get no gradient)."""
        mask = _to_index(mask)
        return ops.Where.apply(self._lift(value)._cast_to(self.dtype), self, cond=mask)

    def nonzero(self, as_tuple=False):
        """Indices of the nonzero entries: [n, ndim] int64 (no gradient)."""
        idx = get_array_module(self.data).nonzero(self.data)
        if as_tuple:
            return tuple(self._make(i.astype(np.int64), None) for i in idx)
        return self._make(get_array_module(self.data).stack(idx, -1).astype(np.int64), None)

"""einsum: a sum of products over named axes ("bhqd,bhkd->bhqk"), with its gradient.

The gradient of an operand is itself an einsum: the output gradient times every other
operand, summed to the operand's own subscripts (an index that appears in no other place
is broadcast back). Covered, as torch.einsum: explicit or implicit output, any number of
operands, `...` for broadcast batch axes, size-1 axes broadcasting against longer ones,
and an index repeated inside one operand ("ii->i", the trace "ii->"): that operand enters
through its diagonal, and its gradient is the diagonal's gradient placed back on the
diagonal of zeros."""

import string

from tinygen.autograd import Function
from tinygen.backend import get_array_module


def _expand_ellipsis(terms, out, arrow, ndims, equation):
    """Replace each '...' by letters of its own: the batch axes broadcast right-aligned, as
    in NumPy, so an operand with fewer of them takes the last letters."""
    free = [c for c in string.ascii_uppercase + string.ascii_lowercase
            if c not in equation]
    counts = []
    for term, ndim in zip(terms, ndims):
        if "..." in term:
            k = ndim - (len(term) - 3)
            if k < 0:
                raise ValueError(f"einsum: operand {term!r} has {ndim} dims, fewer than its "
                                 "subscripts")
            counts.append(k)
    n = max(counts, default=0)
    if n > len(free):
        raise ValueError(f"einsum: {n} '...' axes and too few unused letters")
    batch = "".join(free[:n])
    terms = [t.replace("...", batch[n - (ndim - (len(t) - 3)):]) if "..." in t else t
             for t, ndim in zip(terms, ndims)]
    if arrow:
        out = out.replace("...", batch)
    return terms, out, batch


def parse_equation(equation, ndims):
    """('ij,jk->ik', [2, 2]) -> (['ij', 'jk'], 'ik'): the subscripts of each operand (given
    the operands' ndims, to expand '...') and of the output. The implicit form 'ij,jk'
    sums the indices that appear twice and keeps the others in alphabetical order after
    the '...' axes, as NumPy and PyTorch do; an explicit output may leave '...' out (its
    axes are then summed, as in PyTorch)."""
    eq = equation.replace(" ", "")
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ndims):
        raise ValueError(f"einsum: {equation!r} names {len(terms)} operands, "
                         f"got {len(ndims)}")
    for term in terms + [out]:
        if term.count("...") > 1 or any(c not in string.ascii_letters
                                        for c in term.replace("...", "")):
            raise ValueError(f"einsum: subscripts must be letters and at most one '...', "
                             f"got {term!r}")
    if "..." in out and "..." not in lhs:
        raise ValueError(f"einsum: output {out!r} has '...' but no operand does")
    terms, out, batch = _expand_ellipsis(terms, out, arrow, ndims, eq)
    if len(set(out)) != len(out):
        raise ValueError(f"einsum: output index repeated in {out!r}")
    if not arrow:
        joined = "".join(terms)
        single = sorted(c for c in set(joined) - set(batch) if joined.count(c) == 1)
        out = batch + "".join(single)
    if set(out) - set("".join(terms)):
        raise ValueError(f"einsum: output index in {out!r} is in no operand")
    return terms, out


def _diagonal_index(xp, term, sizes):
    """Index arrays picking x[i, i, j] for term 'iij': one arange per distinct letter,
    shaped to broadcast over the distinct letters in order of first appearance."""
    letters = "".join(dict.fromkeys(term))
    grids = {c: xp.arange(sizes[c]).reshape([-1 if d == c else 1 for d in letters])
             for c in letters}
    return letters, tuple(grids[c] for c in term)


class Einsum(Function):
    def forward(self, *xs, terms, out):
        xp = get_array_module(xs[0])
        sizes = {}
        for x, term in zip(xs, terms):
            if x.ndim != len(term):
                raise ValueError(f"operand {term!r} has {x.ndim} dims")
            for c, n in zip(term, x.shape):
                if term.count(c) > 1 and n != x.shape[term.index(c)]:
                    raise ValueError(f"subscript {c} is repeated in {term!r} but "
                                     f"the sizes differ, {tuple(x.shape)}")
                if sizes.get(c, 1) not in (1, n) and n != 1:
                    raise ValueError(f"index {c} has sizes {sizes[c]} and {n}")
                sizes[c] = max(sizes.get(c, 1), n)
        # an operand with a repeated index enters through its diagonal: 'ii' -> 'i'
        self.diagonals, unique_terms, arrays = [], [], []
        for x, term in zip(xs, terms):
            if len(set(term)) < len(term):
                letters, where = _diagonal_index(xp, term, dict(zip(term, x.shape)))
                self.diagonals.append((where, x.shape))
                x, term = x[where], letters
            else:
                self.diagonals.append(None)
            unique_terms.append(term)
            arrays.append(x)
        self.xs, self.terms, self.out = arrays, unique_terms, out
        return xp.einsum(",".join(unique_terms) + "->" + out, *arrays)

    def backward(self, grad):
        xp = get_array_module(grad)
        grads = []
        for i, (x, term) in enumerate(zip(self.xs, self.terms)):
            if not self.needs_input_grad[i]:
                grads.append(None)
                continue
            others = [(y, t) for j, (y, t) in enumerate(zip(self.xs, self.terms)) if j != i]
            seen = set(self.out).union(*(set(t) for _, t in others))
            target = "".join(c for c in term if c in seen)  # indices only x has: broadcast
            eq = ",".join([self.out] + [t for _, t in others]) + "->" + target
            g = xp.einsum(eq, grad, *(y for y, _ in others))
            # an index of size 1 in x that broadcast against a longer one: sum it back (an
            # index that is 1 in g but longer in x broadcasts up, below)
            own = [x.shape[term.index(c)] for c in target]
            summed = tuple(k for k, n in enumerate(own) if n == 1 and g.shape[k] != 1)
            g = g.sum(axis=summed, keepdims=True) if summed else g
            sizes = dict(zip(target, g.shape))
            shape = [sizes.get(c, 1) for c in term]
            g = xp.broadcast_to(g.reshape(shape), x.shape)
            if self.diagonals[i] is not None:  # back onto the diagonal, zeros elsewhere
                where, full_shape = self.diagonals[i]
                full = xp.zeros(full_shape, dtype=grad.dtype)
                full[where] = g
                g = full
            grads.append(g)
        return tuple(grads)

"""einsum: a sum of products over named axes ("bhqd,bhkd->bhqk"), with its gradient.

The gradient of an operand is itself an einsum: the output gradient times every other
operand, summed to the operand's own subscripts (an index that appears in no other place
is broadcast back). Supported: explicit or implicit output, any number of operands, each
index at most once per operand; not supported (a clear error): '...' and repeated indices
inside one operand (diagonals)."""

import string

from tinygen.autograd import Function
from tinygen.backend import get_array_module


def parse_equation(equation, n_operands):
    """'ij,jk->ik' -> (['ij', 'jk'], 'ik'); the implicit form 'ij,jk' sums the indices
    that appear twice and keeps the others in alphabetical order, as NumPy and PyTorch."""
    eq = equation.replace(" ", "")
    if "." in eq:
        raise ValueError(f"einsum: '...' is not supported ({equation!r}); write the axes out")
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != n_operands:
        raise ValueError(f"einsum: {equation!r} names {len(terms)} operands, "
                         f"got {n_operands}")
    for term in terms + [out]:
        if any(c not in string.ascii_letters for c in term):
            raise ValueError(f"einsum: subscripts must be letters, got {term!r}")
        if len(set(term)) != len(term):
            raise ValueError(f"einsum: index repeated inside {term!r} (diagonals) is not "
                             "supported")
    if not arrow:
        counts = {c: lhs.count(c) for c in set(lhs) - {","}}
        out = "".join(sorted(c for c, n in counts.items() if n == 1))
    if set(out) - set(lhs):
        raise ValueError(f"einsum: output index in {out!r} is in no operand")
    return terms, out


class Einsum(Function):
    def forward(self, *xs, terms, out):
        self.xs, self.terms, self.out = xs, terms, out
        for x, term in zip(xs, terms):
            if x.ndim != len(term):
                raise ValueError(f"einsum: operand {term!r} has {x.ndim} dims")
        return get_array_module(xs[0]).einsum(",".join(terms) + "->" + out, *xs)

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
            grads.append(xp.broadcast_to(g.reshape(shape), x.shape))
        return tuple(grads)

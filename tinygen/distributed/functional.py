"""Collectives that are nodes of the autograd graph (torch.distributed.nn.functional).

`all_gather_rows` is what a loss over the whole global batch needs when each rank computes
only its rows: CLIP's contrastive loss compares every image with every caption, so each
rank encodes its rows, gathers the embeddings of all ranks and evaluates the loss one
process would (open_clip's `gather_with_grad`). Backward: every rank holds the same
gradient of the gathered rows; its rows' gradient is the sum over ranks (an all-reduce),
N times the one-process gradient, which DDP's gradient average divides by N again.
"""

from tinygen.autograd import Function
from tinygen.backend import get_array_module
from tinygen.distributed.collectives import ReduceOp, all_gather_into_tensor, all_reduce
from tinygen.distributed.process_group import group


class AllGatherRows(Function):
    """x [n_r, ...] (rank r's rows, n_r may differ by rank) -> [Σ n_r, ...] in rank order."""

    def forward(self, x):
        g = group()
        xp = get_array_module(x)
        sizes = g.comm.allgather((int(x.shape[0]), tuple(x.shape[1:]), str(x.dtype)))
        if any(s[1:] != sizes[0][1:] for s in sizes):
            raise ValueError(f"all_gather_rows: the ranks' rows differ in shape or dtype "
                             f"({[(n, *rest) for n, *rest in sizes]})")
        rows = [n for n, _, _ in sizes]
        m = max(rows)
        padded = xp.zeros((m, *x.shape[1:]), x.dtype)                 # [m, ...]
        padded[:x.shape[0]] = x
        out = xp.empty((g.world_size * m, *x.shape[1:]), x.dtype)     # [N * m, ...]
        all_gather_into_tensor(out, padded, check=False)
        self.lo = sum(rows[:g.rank])
        self.hi = self.lo + rows[g.rank]
        return xp.concatenate([out[r * m:r * m + n] for r, n in enumerate(rows)])

    def backward(self, grad):
        full = all_reduce(get_array_module(grad).ascontiguousarray(grad), ReduceOp.SUM,
                          check=False)
        return full[self.lo:self.hi].copy()


def all_gather_rows(x):
    """Every rank's rows of x, concatenated in rank order, differentiable; in a group of
    one, x itself. x [n_r, ...] -> [Σ_r n_r, ...]."""
    if group().comm is None:
        return x
    return AllGatherRows.apply(x)

"""Batches for data parallelism: every rank draws the same global batch from the same
seeded generator and keeps its own rows, so N ranks × B/N rows reproduce one process × B
(and the generator's state stays identical on every rank, so checkpoints need one copy)."""

from tinygen.distributed.process_group import group


def local_batch(array, micro_step=0, grad_accum=1):
    """This rank's rows of a global batch [B, ...]: micro-batch `micro_step` of
    `grad_accum` (B/grad_accum rows each), then this rank's B/(grad_accum·N) of those."""
    g = group()
    B, parts = array.shape[0], grad_accum * g.world_size
    if B % parts:
        raise ValueError(f"local_batch: the global batch of {B} rows must split evenly into "
                         f"grad_accum={grad_accum} × world_size={g.world_size} = {parts} parts")
    if not 0 <= micro_step < grad_accum:
        raise ValueError(f"local_batch: micro_step {micro_step} is outside 0..{grad_accum - 1}")
    n = B // parts
    start = (micro_step * g.world_size + g.rank) * n  # micro-batch first, then rank
    return array[start:start + n]


def local_share(array):
    """This rank's rows of a global batch [B, ...] that need not split evenly (the last
    batch of an epoch), in N contiguous runs of B/N rows rounded, and the weight n_r·N/B that makes the
    ranks' average of `weight × (mean loss over rank r's rows)` — what DDP's gradient
    average computes — the mean over all B rows: scale the loss by it before backward."""
    g = group()
    B, N = array.shape[0], g.world_size
    if B < N:
        raise ValueError(f"local_share: a batch of {B} rows cannot give each of {N} ranks a row")
    lo, hi = g.rank * B // N, (g.rank + 1) * B // N  # contiguous, sizes differ by at most 1
    return array[lo:hi], (hi - lo) * N / B

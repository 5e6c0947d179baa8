"""Checkpoints of a data-parallel run: one file, written by rank 0, readable under any N.

Every rank holds the same model and the same batch generator, so rank 0's copy is the
run's. The one thing spread over ranks is ZeRO's optimizer state: every rank takes part in
gathering it (a collective), then rank 0 writes the ordinary single-process layout. To
resume, every rank reads the file (tinygen.checkpoint.load_checkpoint); ZeRO keeps its shard.
"""

from tinygen.checkpoint import save_checkpoint as _save_checkpoint
from tinygen.distributed.process_group import barrier, group


class _GatheredState:
    """An optimizer's state, gathered already, in the shape save_checkpoint asks for."""

    def __init__(self, state):
        self.state = state

    def state_dict(self):
        return self.state


def save_checkpoint(path, model, optimizer=None, step=0, rngs=None, **extra):
    """Collective: call it on every rank. Rank 0 writes; the others wait until it has."""
    state = optimizer.state_dict() if optimizer is not None else None  # ZeRO: gathers
    if group().rank == 0:
        _save_checkpoint(path, model, _GatheredState(state) if state is not None else None,
                         step, rngs, **extra)
    barrier()

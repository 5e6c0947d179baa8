"""Minibatches for a fixed number of training steps, however many epochs that takes.

    for step, idx in minibatch_steps(len(x), 64, max_steps=2000, rng=rng):
        loss = model(x[idx], y[idx])
        ...

replaces the loop every step-budgeted trainer otherwise writes by hand:

    it = 0
    while it < max_steps:
        for idx in iterate_minibatches(n, batch_size, rng, drop_last=True):
            if it == max_steps:
                break
            ...
            it += 1

and draws from `rng` exactly as that loop does (a new permutation at the start of each
epoch, none after the last step), so a run gives the same batches as before.
"""

from tinygen.data.images import iterate_minibatches


def minibatch_steps(n, batch_size, max_steps, rng, drop_last=True):
    """Yield (step, idx) for step = 0 .. max_steps - 1: index arrays into range(n), a
    reshuffled epoch of batches after another (see `iterate_minibatches`)."""
    if max_steps < 0:
        raise ValueError(f"minibatch_steps: max_steps={max_steps}: must be >= 0")
    if batch_size < 1 or (drop_last and batch_size > n) or n < 1:
        raise ValueError(f"minibatch_steps: batch_size={batch_size}: must lie in "
                         f"[1, n={n}] (with drop_last=True an epoch would have no batch)")
    step = 0
    while step < max_steps:
        for idx in iterate_minibatches(n, batch_size, rng, drop_last=drop_last):
            if step == max_steps:
                return
            yield step, idx
            step += 1

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

A dataset that fits on the device is uploaded once and indexed there. One that does not
(or that lives on the host for another reason) streams: `stream_to_device` gathers each
batch on the host straight into pinned memory and queues its copy to the GPU without making
the host wait, so the host prepares batch i + 1 while the GPU trains on batch i.
"""

import numpy as np

from tinygen.backend import check_device, copy_to_device, module_for, pinned_empty
from tinygen.data.images import iterate_minibatches
from tinygen.tensor import Tensor


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


def stream_to_device(arrays, batches, device, depth=2):
    """Yield, for each index array of `batches`, a tuple of Tensors on `device`: the rows idx
    of each host (NumPy) array in `arrays`, as `tuple(Tensor(a[idx]) for a in arrays)`.

        for x, y in stream_to_device((images, labels), iterate_minibatches(n, 64, rng), "cuda"):
            loss = model.loss(model(x), y)

    On the CPU that is all it does. On the GPU each batch is gathered (np.take) directly into
    one of `depth` pinned staging buffers and copied with backend.copy_to_device: the copy is
    queued on the stream and the host goes on to the next batch. Before a staging buffer is
    written again the host waits for that buffer's last copy only (a CUDA event), never for
    the training step; each batch gets its own device arrays, so a Tensor kept from an
    earlier step is never overwritten."""
    device = check_device(device)
    arrays = tuple(np.asarray(a) for a in arrays)
    if not arrays or len({len(a) for a in arrays}) > 1:
        raise ValueError(f"stream_to_device: arrays must be one or more arrays of the same "
                         f"length, got lengths {[len(a) for a in arrays]}")
    if depth < 1:
        raise ValueError(f"stream_to_device: depth={depth}: must be >= 1")
    if device == "cpu":
        for idx in batches:
            yield tuple(Tensor(a[idx]) for a in arrays)
        return
    xp = module_for(device)
    staging, pending = {}, [None] * depth     # staging buffers, grown to the largest batch
    for i, idx in enumerate(batches):
        idx = np.asarray(idx)
        slot, n = i % depth, len(idx)
        if pending[slot] is not None:
            pending[slot].synchronize()       # its previous copy has left the buffer
        if slot not in staging or len(staging[slot][0]) < n:
            staging[slot] = [pinned_empty((n,) + a.shape[1:], a.dtype, device) for a in arrays]
        batch = []
        for a, buf in zip(arrays, staging[slot]):
            host = np.take(a, idx, axis=0, out=buf[:n])           # one host copy, into pinned
            out = xp.empty(host.shape, dtype=host.dtype)
            pending[slot] = copy_to_device(host, out)
            batch.append(Tensor(out))
        yield tuple(batch)

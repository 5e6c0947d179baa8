"""DistributedDataParallel: every rank holds the whole model, sees its slice of the global
batch, and before the optimizer step the gradients are averaged over ranks, so every rank
takes the same step that one process would take on the whole batch.

    model = GPT(config)
    ddp = DistributedDataParallel(model)        # rank 0's initial weights reach every rank
    for step in ...:
        for micro in range(grad_accum):
            with ddp.no_sync() if micro < grad_accum - 1 else contextlib.nullcontext():
                loss = ddp(x_micro, y_micro)[1] / grad_accum
                loss.backward()
                ddp.sync_gradients()           # a no-op inside no_sync()
        optimizer.step()

Gradients travel in buckets of about `bucket_cap_mb` (PyTorch's default 25 MB), filled in
reverse order of registration — the order backward finishes them (Li et al. 2020, "PyTorch
Distributed", section 3.2.3). Each bucket's all-reduce is non-blocking (MPI Iallreduce,
or NCCL on the current stream): while bucket k is in flight, bucket k + 1 is packed. (How
far an MPI all-reduce gets meanwhile is up to the MPI: MPICH advances it only inside MPI
calls, so on the CPU the gain is small; NCCL runs on the GPU by itself.)

Overlap with backward, as PyTorch's reducer does: every parameter carries a
post-accumulate-grad hook (`Tensor.register_post_accumulate_grad_hook`); when the last
gradient of a bucket is final, the hook packs the bucket and starts its all-reduce while
backward goes on computing the gradients of earlier layers. `sync_gradients()` starts
whatever has not started (a parameter that got no gradient this step) and waits for all.
Buckets start strictly in bucket order, so every rank issues the collectives in the same
order even if its backward finishes them in another. The hooks start buckets only once
`sync_gradients()` has been called (from the second step of an ordinary loop), so a loop
that never calls it (ZeRO-1 reduce-scatters in its step instead) pays nothing, and inside
`no_sync()` they do nothing. With `sync_in_backward=True` the hooks are armed from the
first backward and the one that starts the last bucket also waits for all of them, so the
gradients are averaged when `backward()` returns, as in PyTorch, and a training step written
for one process (clipping, then `optimizer.step()`) needs no change; it needs every
parameter to get a gradient in each backward (else call `sync_gradients()`, which is
otherwise a no-op then).

Flat-buffer seam: a bucket is a contiguous slice of gradient memory. Here it is a scratch
buffer that `Bucket.pack` copies gradients into; a bucket that is a slice of the
optimizer's flat gradient buffer would make pack/unpack nothing, but the optimizer's buffers
are built per parameter group, after DDP, so the two layouts do not line up yet.
"""

import contextlib
import time

from tinygen.autograd import is_grad_enabled
from tinygen.backend import get_array_module
from tinygen.distributed.collectives import ReduceOp, _transport, broadcast
from tinygen.distributed.process_group import group
from tinygen.nn.module import Module
from tinygen.tensor import Tensor


class Bucket:
    """Consecutive parameters whose gradients travel in one all-reduce. `views`: each
    parameter's segment of an optimizer's flat gradient buffer, with `buffer` their span;
    the gradients are then all-reduced where backward wrote them, with no copy."""

    def __init__(self, params, buffer=None, views=None):
        self.params = params
        p0 = params[0]
        xp = get_array_module(p0.data)
        self.sizes = [p.data.size for p in params]
        if buffer is None:
            buffer = xp.empty(sum(self.sizes), p0.data.dtype)  # [n] gradients, flattened
        self.buffer, self.views = buffer, views
        self.request = None
        self.ready = set()    # ids of the parameters whose gradient is final this step
        self.started = False  # its all-reduce is in flight (or, staged, done)

    def pack(self):
        """Copy each gradient into the buffer (zeros where a parameter got none); a
        gradient that is its flat segment already (backward wrote it there) stays."""
        offset = 0
        for i, (p, n) in enumerate(zip(self.params, self.sizes)):
            view = self.buffer[offset:offset + n]
            if p.grad is None:
                view[...] = 0
            elif self.views is None or p.grad.data is not self.views[i]:
                view[...] = p.grad.data.reshape(-1)
            offset += n

    def unpack(self, scale):
        """Scale the summed gradients into means; each .grad becomes a view of the buffer."""
        self.buffer *= scale
        offset = 0
        for i, (p, n) in enumerate(zip(self.params, self.sizes)):
            view = (self.views[i] if self.views is not None
                    else self.buffer[offset:offset + n].reshape(p.data.shape))
            p.grad = Tensor._make(view, None)  # its own segment: Parameter copies nothing
            offset += n


def make_buckets(params, bucket_cap_mb):
    """Split params (in the order given) into runs of one dtype/device of ~bucket_cap_mb."""
    flat = _flat_buckets(params, bucket_cap_mb)
    if flat is not None:
        return flat
    buckets, run, run_bytes = [], [], 0
    for p in params:
        if run and (run_bytes + p.data.nbytes > bucket_cap_mb * 2**20
                    or type(p.data) is not type(run[0].data) or p.dtype != run[0].dtype):
            buckets.append(Bucket(run))
            run, run_bytes = [], 0
        run.append(p)
        run_bytes += p.data.nbytes
    if run:
        buckets.append(Bucket(run))
    return buckets


def _flat_buckets(params, bucket_cap_mb):
    """Buckets that are slices of the optimizer's flat gradient buffers (optim/flat.py), when
    the optimizer was built before DDP and holds exactly these parameters; else None.
    Each buffer is cut from its end (the last layers, whose gradients backward finishes
    first) into runs of ~bucket_cap_mb; buckets go in order of their earliest-registered
    parameter, latest first: roughly the order in which backward completes them."""
    flats = {}
    for p in params:
        f = getattr(p, "_flat", None)
        if f is None or p.data is not p._data_view:
            return None
        flats[id(f)] = f
    if sum(len(f.params) for f in flats.values()) != len(params):
        return None  # a buffer also holds parameters that are not this module's
    order = {id(p): i for i, p in enumerate(reversed(params))}  # registration order
    buckets = []
    for f in flats.values():
        run, run_bytes, end = [], 0, f.grad.size
        for i in reversed(range(len(f.params))):
            p, v = f.params[i], f.grad_views[i]
            run.insert(0, (p, v))
            run_bytes += v.nbytes
            if run_bytes >= bucket_cap_mb * 2**20 or i == 0:
                start = end - sum(v.size for _, v in run)
                buckets.append(Bucket([p for p, _ in run], f.grad[start:end],
                                      [v for _, v in run]))
                run, run_bytes, end = [], 0, start
    return sorted(buckets, key=lambda b: -min(order[id(p)] for p in b.params))


class DistributedDataParallel(Module):
    """Wraps `module` (call it as you would the module); averages gradients over ranks."""

    def __init__(self, module, bucket_cap_mb=25, broadcast_buffers=True,
                 sync_in_backward=False):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expects a tinygen Module, "
                            f"got {type(module).__name__}")
        self.module = module
        self.group = group()
        self.require_backward_grad_sync = True
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            raise ValueError("DistributedDataParallel: the module has no parameters that "
                             "require grad")
        tensors = params if not broadcast_buffers else list(
            {id(t.data): t for t in module.state_dict().values()}.values())  # tied: once
        self._broadcast_state(tensors)
        self.broadcast_buffers = broadcast_buffers and self.group.comm is not None
        self.buckets = make_buckets(list(reversed(params)), bucket_cap_mb)
        self.comm_seconds = 0.0  # time spent starting and finishing all-reduces, for benchmarks
        self.buckets_started_in_backward = 0  # how many all-reduces the hooks started
        # hooks start buckets once sync_gradients() has been called, or from the first
        # backward with sync_in_backward, where the hook that starts the last bucket also
        # waits for them all: gradients are averaged when backward returns, as in PyTorch
        self._armed = self.sync_in_backward = sync_in_backward
        self._done = False   # this backward's gradients are averaged already
        self._next = 0       # the next bucket to start: they start in order on every rank
        if self.group.comm is not None:
            self._bucket_of = {id(p): b for b in self.buckets for p in b.params}
            for p in params:
                p.register_post_accumulate_grad_hook(self._grad_ready)

    def _broadcast_state(self, tensors):
        """Rank 0's parameters (and buffers) to every rank, after checking the models match."""
        g = self.group
        if g.comm is None:
            return
        shapes = [(tuple(t.shape), str(t.dtype)) for t in tensors]
        everyone = g.comm.allgather(shapes)
        for r, theirs in enumerate(everyone):
            if theirs != shapes:
                raise ValueError(f"DistributedDataParallel: rank {r}'s model differs from rank "
                                 f"{g.rank}'s ({len(theirs)} vs {len(shapes)} tensors, or "
                                 "different shapes); build the same model on every rank")
        for t in tensors:
            broadcast(t, src=0, check=False)

    def forward(self, *args, **kwargs):
        # as PyTorch's default (broadcast_buffers=True): rank 0's buffers (BatchNorm's
        # running statistics) reach every rank before each training forward, so all ranks
        # evaluate and save the same model; SyncBatchNorm keeps them equal by itself
        if self.broadcast_buffers and self.module.training and is_grad_enabled():
            for t in self.module.buffers():  # looked up now: load_state_dict may swap them
                broadcast(t, src=0, check=False)
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self):
        """Gradient accumulation: inside, sync_gradients() does nothing and gradients just
        add up locally; the first sync_gradients() outside averages the sums."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    def _grad_ready(self, p):
        """The hook: p.grad is final for this backward; start every bucket that is full."""
        self._done = False  # a new backward (no_sync's too): its gradients are not averaged
        if not (self._armed and self.require_backward_grad_sync):
            return
        bucket = self._bucket_of[id(p)]
        if bucket.started:
            raise RuntimeError(
                "DistributedDataParallel: a parameter got a gradient after its bucket's "
                "all-reduce had started (a second backward before sync_gradients()); call "
                "sync_gradients() after each backward, or accumulate inside no_sync()")
        bucket.ready.add(id(p))
        t0 = time.perf_counter()
        while (self._next < len(self.buckets)
               and len(self.buckets[self._next].ready) == len(self.buckets[self._next].params)):
            self._start(self.buckets[self._next])
            self._next += 1
            self.buckets_started_in_backward += 1
        for b in self.buckets[:self._next]:  # MPICH advances a transfer only inside MPI
            if b.request is not None:       # calls: one test per hook keeps it moving
                b.request.Test()
        self.comm_seconds += time.perf_counter() - t0
        if self.sync_in_backward and self._next == len(self.buckets):
            self._finish()

    def _start(self, bucket):
        bucket.pack()
        bucket.request = _transport(self.group, bucket.buffer).iall_reduce(bucket.buffer,
                                                                           ReduceOp.SUM)
        bucket.started = True

    def sync_gradients(self):
        """Average every parameter's .grad over the ranks: start the buckets the hooks have
        not started (bucketed, non-blocking), then wait for every one. A no-op when
        sync_in_backward averaged them already."""
        if not self.require_backward_grad_sync or self.group.comm is None or self._done:
            return
        t0 = time.perf_counter()
        while self._next < len(self.buckets):  # in bucket order, as the hooks do
            self._start(self.buckets[self._next])
            self._next += 1
        self.comm_seconds += time.perf_counter() - t0
        self._finish()

    def _finish(self):
        """Wait for every bucket's all-reduce and turn the sums into means."""
        t0 = time.perf_counter()
        for bucket in self.buckets:
            if bucket.request is not None:
                bucket.request.Wait()
                bucket.request = None
            bucket.unpack(1.0 / self.group.world_size)
            bucket.ready.clear()
            bucket.started = False
        self._next = 0
        self._armed = self._done = True
        self.comm_seconds += time.perf_counter() - t0


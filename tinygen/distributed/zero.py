"""ZeRO stage 1 (Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward Training
Trillion Parameter Models", section 5.1): optimizer state partitioned across ranks.

Each parameter, flattened and padded to a multiple of N, is cut into N equal shards; rank r
owns shard r of every parameter. A step is
    reduce-scatter the gradients (mean)  -> rank r holds the mean gradient of its shards
    the wrapped optimizer updates its shards only (its moments exist for those alone)
    all-gather the parameters            -> every rank holds the whole updated model
which moves as many bytes as DDP's all-reduce (an all-reduce is a reduce-scatter plus an
all-gather) and cuts the optimizer state per rank to 1/N: Adam's two moments go from 8P
to 8P/N bytes. Use it instead of DistributedDataParallel.sync_gradients(): it reduces the
gradients itself.

Sharding is per parameter (every rank gets a slice of each, so the load is even), and the
communication is one collective per direction and bucket, not one per parameter: the
gradients are packed rank-major into one [N, S] buffer (row r holds rank r's shard of every parameter, S
the sum of the shard lengths), so one reduce-scatter hands each rank its row; the updated
shards go back the same way in one all-gather (`_Packing`). Like DDP's buckets, a buffer
holds one dtype and at most `bucket_cap_mb` (4 MB: the transient buffers then add nothing
measurable to peak memory), so a larger model takes a few. Measured with 2 processes on
one 2-core machine (reduce-scatter + all-gather time per step, medians of 4 alternating
runs): GPT cpu config (52 parameters, 1 bucket each way instead of 52) 2.69 -> 2.14 ms;
shakespeare-char (76 parameters, 13 buckets) 35.5 -> 35.0 ms, peak RSS 449 -> 451 MB. A
25 MB cap gave 2.20 and 30.6 ms but ~50 MB more peak memory there. Between machines,
where each collective pays a network round trip, fewer collectives count for more.
state_dict() gathers the shards into the ordinary single-process layout, so a checkpoint
resumes under any number of ranks, with or without ZeRO.
"""

import math
import time

import numpy as np

from tinygen.backend import get_array_module, to_device, to_numpy
from tinygen.distributed.collectives import (
    ReduceOp,
    all_gather_into_tensor,
    all_reduce,
    reduce_scatter_tensor,
)
from tinygen.distributed.process_group import group
from tinygen.tensor import Tensor


class _Shard:
    """Rank r's part [lo, hi) of one flattened parameter, padded length N * s."""

    def __init__(self, param, rank, world_size):
        if not param.data.flags.c_contiguous:
            raise ValueError(f"ZeroRedundancyOptimizer: parameter of shape {param.shape} is "
                             "not contiguous; its shard must be a view of its memory")
        n = param.data.size
        self.param, self.s = param, -(-n // world_size)  # ceil(n / N)
        self.lo, self.hi = min(n, rank * self.s), min(n, (rank + 1) * self.s)
        self.view = Tensor._make(param.data.reshape(-1)[self.lo:self.hi], None)
        self.view.requires_grad = True  # what the wrapped optimizer steps

    def refresh(self):
        """Point the view at the parameter's current array (load_state_dict may swap it)."""
        self.view.data = self.param.data.reshape(-1)[self.lo:self.hi]


class _Packing:
    """The shards of parameters of one dtype, packed rank-major for one collective: shard
    i takes columns [offset_i, offset_i + s_i) of a [N, S] buffer, row r rank r's part, so a
    parameter's padded [N * s] flattening is exactly its [N, s] block of columns."""

    def __init__(self, shards, world_size):
        self.shards, self.N = shards, world_size
        self.offsets = np.cumsum([0] + [sh.s for sh in shards]).tolist()
        self.size = self.offsets[-1]                                  # S
        self.xp = get_array_module(shards[0].param.data)
        self.dtype = shards[0].param.data.dtype

    def blocks(self, buffer):
        """(shard, its [N, s] block of columns of buffer [N, S]) for every shard."""
        return [(sh, buffer[:, o:o + sh.s]) for sh, o in zip(self.shards, self.offsets)]

    def pack(self):
        """Every parameter's gradient, flattened and zero-padded to [N * s], into its block."""
        buffer = self.xp.zeros((self.N, self.size), self.dtype)
        for sh, block in self.blocks(buffer):
            if sh.param.grad is not None:
                _write_rows(block, sh.param.grad.data.reshape(-1))
        return buffer

    def mine(self, row):
        """This rank's row [S], cut into its shard of every parameter."""
        return [(sh, row[o:o + sh.hi - sh.lo]) for sh, o in zip(self.shards, self.offsets)]


def _packings(shards, world_size, cap_bytes):
    """Shards in order, cut into _Packings of one (array module, dtype) each, every packed
    [N, S] buffer at most cap_bytes (a shard larger than that gets one of its own)."""
    packings, run, run_bytes, kind = [], [], 0, None
    for sh in shards:
        data = sh.param.data
        this = (get_array_module(data).__name__, data.dtype.str)
        size = world_size * sh.s * data.dtype.itemsize
        if run and (this != kind or run_bytes + size > cap_bytes):
            packings.append(_Packing(run, world_size))
            run, run_bytes = [], 0
        run.append(sh)
        run_bytes += size
        kind = this
    if run:
        packings.append(_Packing(run, world_size))
    return packings


def _row_major(block, n):
    """The part of block [N, s] that n <= N s numbers fill in row-major order: its whole
    rows [k, s] and the start [n - k s] of the next row (views)."""
    k = n // block.shape[1] if block.shape[1] else 0
    tail = n - k * block.shape[1]
    return block[:k], block[k, :tail] if tail else block[:0].reshape(-1)


def _write_rows(block, flat):
    """block [N, s] <- flat [n] in row-major order (the rest of block stays as it is)."""
    whole, tail = _row_major(block, flat.size)
    whole[...] = flat[:whole.size].reshape(whole.shape)
    tail[...] = flat[whole.size:]


def _read_rows(flat, block):
    """flat [n] <- block [N, s] read in row-major order: _write_rows' inverse."""
    whole, tail = _row_major(block, flat.size)
    flat[:whole.size] = whole.reshape(-1)
    flat[whole.size:] = tail


class ZeroRedundancyOptimizer:
    """`ZeroRedundancyOptimizer(params, optimizer_class=AdamW, lr=..., ...)`, as in
    torch.distributed.optim; param groups (e.g. no weight decay on biases) carry over.
    `bucket_cap_mb` (tinygen's; DDP's name): the most each collective's buffer holds."""

    def __init__(self, params, optimizer_class, bucket_cap_mb=4.0, **defaults):
        self.group = g = group()
        params = list(params)
        groups = params if params and isinstance(params[0], dict) else [{"params": params}]
        self.shards = []          # one per parameter, in group order
        inner_groups = []
        self._group_sizes = [len(gr["params"]) for gr in groups]  # for state_dict's layout
        for gr in groups:
            shards = [_Shard(p, g.rank, g.world_size) for p in gr["params"]]
            self.shards += shards
            # a parameter too small to reach this rank's shard has nothing to update here
            inner_groups.append({**gr, "params": [s.view for s in shards if s.hi > s.lo]})
        # the shards are plain views of the parameters' arrays (not Parameters), updated
        # one by one: the inner optimizer keeps no flat buffer of its own
        self.optim = optimizer_class(inner_groups, **{**defaults, "flat": False})
        self.packings = _packings(self.shards, g.world_size, bucket_cap_mb * 2**20)
        self.param_groups = self.optim.param_groups  # set lr here, as on any optimizer
        self._reduced = False
        self.comm_seconds = 0.0  # time in reduce-scatter + all-gather, for benchmarks

    def set_lr(self, lr):
        """Set the learning rate of every parameter group (Optimizer.set_lr)."""
        self.optim.set_lr(lr)

    # ---- one step: reduce-scatter, (clip), update the shard, all-gather ----------------
    def reduce_gradients(self):
        """Mean gradient of this rank's shard of every parameter (once per step)."""
        if self._reduced:
            return
        t0 = time.perf_counter()
        for packing in self.packings:
            row = packing.xp.empty(packing.size, packing.dtype)
            reduce_scatter_tensor(row, packing.pack(), ReduceOp.AVG, check=False)
            for sh, grad in packing.mine(row):
                sh.refresh()
                sh.view.grad = Tensor._make(grad, None)
        self._reduced = True
        self.comm_seconds += time.perf_counter() - t0

    def clip_grad_norm_(self, max_norm):
        """clip_grad_norm_ over the whole model: each rank sums its shards' squares, one
        all-reduce makes the global norm. Returns the norm before clipping."""
        self.reduce_gradients()
        local = sum(float(np.dot(to_numpy(sh.view.grad.data), to_numpy(sh.view.grad.data)))
                    for sh in self.shards if sh.hi > sh.lo)
        total = np.array([local], np.float64)
        all_reduce(total, ReduceOp.SUM, check=False)
        norm = math.sqrt(float(total[0]))
        if not math.isfinite(norm):
            raise FloatingPointError(f"ZeroRedundancyOptimizer.clip_grad_norm_: the gradient "
                                     f"norm is {norm}")
        coef = max_norm / (norm + 1e-6)
        if coef < 1.0:
            for sh in self.shards:
                sh.view.grad.data *= coef
        return norm

    def step(self):
        self.reduce_gradients()
        self.optim.step()
        t0 = time.perf_counter()
        for packing in self.packings:
            row = packing.xp.zeros(packing.size, packing.dtype)
            for sh, part in packing.mine(row):
                part[...] = sh.view.data
            full = packing.xp.empty((packing.N, packing.size), packing.dtype)
            all_gather_into_tensor(full, row, check=False)
            for sh, block in packing.blocks(full):   # a view: contiguous, as _Shard checks
                _read_rows(sh.param.data.reshape(-1), block)
                sh.view.grad = None
        self._reduced = False
        self.comm_seconds += time.perf_counter() - t0

    def zero_grad(self):
        for sh in self.shards:
            sh.param.grad = None
            sh.view.grad = None
        self._reduced = False

    # ---- memory and checkpoints ---------------------------------------------------------
    def state_bytes(self):
        """Bytes of optimizer state (moments) held by this rank."""
        return sum(v.nbytes for s in self.optim.state.values() for v in s.values()
                   if hasattr(v, "nbytes"))

    def state_dict(self):
        """The whole optimizer state in the single-process layout (a collective: every
        rank must call it; every rank gets the full dict)."""
        g, N = self.group, self.group.world_size
        keys = sorted({k for s in self.optim.state.values() for k in s})
        state = {}
        for i, sh in enumerate(self.shards):
            p = sh.param
            st = self.optim.state.get(sh.view, {})
            # scalars (Adam's step) are equal on every rank; take them from a rank that has them
            scalars = {k: v for k, v in st.items() if not hasattr(v, "shape")}
            if g.comm is not None:
                scalars = next((s for s in g.comm.allgather(scalars) if s), {})
            entry = dict(scalars)
            for k in keys:
                if k in scalars:
                    continue
                mine = np.zeros(sh.s, p.dtype)
                if k in st:
                    mine[:sh.hi - sh.lo] = to_numpy(st[k])
                full = np.empty(N * sh.s, mine.dtype)
                all_gather_into_tensor(full, mine, check=False)
                entry[k] = Tensor._make(full[:p.data.size].reshape(p.data.shape), None)
            if entry:
                state[i] = entry
        groups, start = [], 0
        for own, n in zip(self.optim.param_groups, self._group_sizes):
            groups.append({**{k: v for k, v in own.items() if k != "params"},
                           "params": list(range(start, start + n))})
            start += n
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Take this rank's shard of a full (single-process layout) optimizer state."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.optim.param_groups):
            raise ValueError("ZeroRedundancyOptimizer.load_state_dict: the saved parameter "
                             "groups do not match this optimizer's")
        for gr, own in zip(groups, self.optim.param_groups):
            own.update({k: (tuple(v) if isinstance(v, list) else v)
                        for k, v in gr.items() if k != "params"})
        self.optim.state = {}
        for i, s in state_dict["state"].items():
            sh = self.shards[int(i)]
            if sh.hi == sh.lo:
                continue
            sh.refresh()
            entry = {}
            for k, v in s.items():
                v = v.data if isinstance(v, Tensor) else v
                if hasattr(v, "shape") and tuple(v.shape) == tuple(sh.param.shape):
                    part = to_numpy(v).reshape(-1)[sh.lo:sh.hi].astype(sh.param.dtype)
                    entry[k] = to_device(part.copy(), sh.param.device)
                else:
                    entry[k] = v
            self.optim.state[sh.view] = entry

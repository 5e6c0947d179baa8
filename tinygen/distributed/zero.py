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

Sharding is per parameter (every rank gets a slice of each, so the load is even); with a
flat gradient buffer the per-parameter loop becomes one reduce-scatter over the buffer.
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


class ZeroRedundancyOptimizer:
    """`ZeroRedundancyOptimizer(params, optimizer_class=AdamW, lr=..., ...)`, as in
    torch.distributed.optim; param groups (e.g. no weight decay on biases) carry over."""

    def __init__(self, params, optimizer_class, **defaults):
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
        t0, N = time.perf_counter(), self.group.world_size
        for sh in self.shards:
            p = sh.param
            xp = get_array_module(p.data)
            full = xp.zeros(N * sh.s, p.data.dtype)  # [N * s] padded, flattened gradient
            if p.grad is not None:
                full[:p.data.size] = p.grad.data.reshape(-1)
            mine = xp.empty(sh.s, p.data.dtype)
            reduce_scatter_tensor(mine, full, ReduceOp.AVG, check=False)
            sh.refresh()
            sh.view.grad = Tensor._make(mine[:sh.hi - sh.lo], None)
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
        t0, N = time.perf_counter(), self.group.world_size
        for sh in self.shards:
            p = sh.param
            xp = get_array_module(p.data)
            mine = xp.zeros(sh.s, p.data.dtype)
            mine[:sh.hi - sh.lo] = sh.view.data
            full = xp.empty(N * sh.s, p.data.dtype)
            all_gather_into_tensor(full, mine, check=False)
            p.data[...] = full[:p.data.size].reshape(p.data.shape)
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

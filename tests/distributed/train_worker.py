"""Worker for tests/test_distributed.py: a tiny GPT trained a few AdamW steps the way
demos/gpt.py trains it (global batch from one seeded generator, each rank its slice,
gradient accumulation with no_sync, DDP or ZeRO-1). Run alone (one process) or under
mpiexec; rank 0 writes the losses and final parameters to --out (.npz)."""

import argparse
import contextlib

import numpy as np

import tinygen as tg
import tinygen.distributed as dist
from tinygen.checkpoint import load_checkpoint
from tinygen.data import get_batch
from tinygen.models.gpt import GPT, GPTConfig
from tinygen.optim import clip_grad_norm_

ap = argparse.ArgumentParser()
ap.add_argument("--out", required=True)
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--batch_size", type=int, default=8)  # global
ap.add_argument("--grad_accum", type=int, default=1)
ap.add_argument("--zero1", action="store_true")
ap.add_argument("--save_at", type=int, default=-1)    # write a checkpoint after this step
ap.add_argument("--ckpt", default="")
ap.add_argument("--resume", action="store_true")
ap.add_argument("--fail_rank", type=int, default=-1)  # this rank raises at step 1
ap.add_argument("--optimizer_first", action="store_true")  # optimizer built before DDP
args = ap.parse_args()

dist.init_process_group()
rank = dist.get_rank()
tg.manual_seed(0 if rank == 0 else 100 + rank)  # different init per rank: DDP must broadcast
rng = np.random.default_rng(7)
data = np.random.default_rng(3).integers(0, 40, size=5000).astype(np.int64)
model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=40,
                      dropout=0.0, bias=True))
if args.optimizer_first:  # as demos/gpt.py: DDP's buckets are slices of its flat buffers
    optimizer = model.configure_optimizers(0.1, 3e-3, (0.9, 0.99))
ddp = dist.DistributedDataParallel(model, bucket_cap_mb=0.01)  # several buckets
if not args.optimizer_first:
    optimizer = model.configure_optimizers(0.1, 3e-3, (0.9, 0.99))
assert all((b.views is not None) == args.optimizer_first for b in ddp.buckets)
if args.zero1:
    optimizer = dist.ZeroRedundancyOptimizer(optimizer.param_groups, type(optimizer),
                                             **optimizer.defaults)
start = 0
if args.resume:
    start = load_checkpoint(args.ckpt, model, optimizer, rngs={"batches": rng})["step"]

losses = []
for step in range(start, args.steps):
    if step == 1 and rank == args.fail_rank:
        raise RuntimeError("a deliberate failure")
    x, y = get_batch(data, args.batch_size, 16, rng)  # the global batch, same on every rank
    optimizer.zero_grad()
    total = 0.0
    for micro in range(args.grad_accum):
        last = micro == args.grad_accum - 1
        with contextlib.nullcontext() if last else ddp.no_sync():
            xb = tg.tensor(dist.local_batch(x, micro, args.grad_accum))
            yb = tg.tensor(dist.local_batch(y, micro, args.grad_accum))
            _, loss = ddp(xb, yb)
            (loss / args.grad_accum).backward()
            total += loss.item() / args.grad_accum
            if not args.zero1:
                ddp.sync_gradients()
    if args.zero1:
        optimizer.clip_grad_norm_(1.0)
    else:
        clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    mean = np.array([total])
    dist.all_reduce(mean, dist.ReduceOp.AVG)
    losses.append(float(mean[0]))
    if step + 1 == args.save_at:
        dist.save_checkpoint(args.ckpt, model, optimizer, step + 1, rngs={"batches": rng})

if rank == 0:
    np.savez(args.out, losses=np.array(losses),
             **{name: p.data for name, p in model.named_parameters()},
             state_bytes=getattr(optimizer, "state_bytes", lambda: 0)(),
             overlapped=ddp.buckets_started_in_backward)

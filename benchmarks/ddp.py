"""Data-parallel GPT training step with 1 and N processes (tinygen.distributed).

The step of demos/gpt.py — global batch drawn on every rank, each rank its slice, forward,
backward, gradient average (DDP's bucketed all-reduce, or ZeRO-1's reduce-scatter +
all-gather), clipping, AdamW — timed on rank 0 after a barrier. Each process gets one BLAS
thread. Strong scaling: the global batch stays fixed, so N ranks each compute B/N rows.

    python benchmarks/ddp.py                                  # shakespeare-char, 1 and 2
    python benchmarks/ddp.py --procs 1 2 4 --batch 16         # a bigger machine
    python benchmarks/ddp.py --config cpu --iters 10

Prints, per run: ms/step, global tokens/s, scaling efficiency (tokens/s over N × the
one-process tokens/s), the share of the step spent in gradient communication (which
includes waiting for the slower rank), optimizer-state bytes and peak RSS per rank.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
from procmem import peak_rss_mib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {  # as in benchmarks/gpt.py
    "cpu": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64},
    "shakespeare-char": {"n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256},
}
VOCAB = 65


def worker(args):
    sys.path.insert(0, ROOT)
    import tinygen as tg
    import tinygen.distributed as dist
    from tinygen.models.gpt import GPT, GPTConfig
    from tinygen.optim import clip_grad_norm_

    dist.init_process_group()
    cfg = CONFIGS[args.config]
    tg.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=VOCAB, dropout=0.0, bias=True, **cfg))
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))  # first, as demos/gpt.py
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=args.bucket_mb)
    if args.zero1:
        opt = dist.ZeroRedundancyOptimizer(opt.param_groups, type(opt), **opt.defaults)
    rng = np.random.default_rng(0)
    T = cfg["block_size"]

    phases = dict.fromkeys(("forward", "backward", "sync", "clip", "step"), 0.0)

    def step():
        t = [time.perf_counter()]
        x = rng.integers(0, VOCAB, (args.batch, T))  # the global batch, same on every rank
        y = rng.integers(0, VOCAB, (args.batch, T))
        _, loss = ddp(tg.tensor(dist.local_batch(x)), tg.tensor(dist.local_batch(y)))
        t.append(time.perf_counter())
        opt.zero_grad()
        loss.backward()  # DDP's hooks start the buckets' all-reduces in here
        t.append(time.perf_counter())
        if args.zero1:
            opt.reduce_gradients()  # reduce-scatter: ZeRO's share of the communication
            t.append(time.perf_counter())
            opt.clip_grad_norm_(1.0)
        else:
            ddp.sync_gradients()  # start what the hooks did not, wait for all
            t.append(time.perf_counter())
            clip_grad_norm_(model.parameters(), 1.0)
        t.append(time.perf_counter())
        opt.step()  # ZeRO: includes the all-gather of the parameters
        t.append(time.perf_counter())
        loss.item()
        for name, a, b in zip(phases, t, t[1:]):
            phases[name] += b - a

    for _ in range(args.warmup):
        step()
    comm = ddp if not args.zero1 else opt
    comm.comm_seconds = 0.0
    for name in phases:
        phases[name] = 0.0
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(args.iters):
        step()
    dist.barrier()
    seconds = time.perf_counter() - t0
    state = (opt.state_bytes() if args.zero1 else
             sum(v.nbytes for s in opt.state.values() for v in s.values() if hasattr(v, "nbytes")))
    mine = np.array([comm.comm_seconds, state, 1024 * peak_rss_mib(),
                     *phases.values()], np.float64)
    everyone = np.zeros((dist.get_world_size(), len(mine)))
    dist.all_gather_into_tensor(everyone, mine)
    if dist.get_rank() == 0:
        print(json.dumps({
            "procs": dist.get_world_size(), "zero1": args.zero1,
            "ms_per_step": 1000 * seconds / args.iters,
            "tokens_per_s": args.iters * args.batch * T / seconds,
            "comm_share": float(everyone[:, 0].max()) / seconds,
            "optimizer_state_mb": [round(b / 2**20, 1) for b in everyone[:, 1]],
            "peak_rss_mb": [round(kb / 1024) for kb in everyone[:, 2]],
            "params": model.num_parameters(),
            # ms per step in each phase, mean over ranks (sync: waiting for the all-reduces,
            # including for the slower rank; ZeRO-1: the reduce-scatter)
            "phase_ms": {name: round(1000 * float(everyone[:, 3 + i].mean()) / args.iters, 1)
                         for i, name in enumerate(phases)},
        }))


def launch(n, args, zero1):
    from tinygen.distributed.launch import mpiexec_command

    argv = [sys.executable, os.path.abspath(__file__), "--worker", "--config", args.config,
            "--batch", str(args.batch), "--iters", str(args.iters), "--warmup",
            str(args.warmup), "--bucket_mb", str(args.bucket_mb)] + (["--zero1"] if zero1 else [])
    cmd, env = mpiexec_command(n, argv, threads=1, bind=args.bind)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=CONFIGS, default="shakespeare-char")
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, default=8, help="global batch (rows of block_size)")
    ap.add_argument("--iters", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3, help="alternate the runs this many times")
    ap.add_argument("--modes", choices=("both", "ddp", "zero1"), default="both")
    ap.add_argument("--bucket_mb", type=float, default=25.0, help="DDP's bucket_cap_mb")
    ap.add_argument("--bind", action="store_true",
                    help="pin each rank to a core (mpiexec --bind-to core)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--zero1", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    modes = {"both": (False, True), "ddp": (False,), "zero1": (True,)}[args.modes]
    print(f"{args.config}, global batch {args.batch}, {platform.processor() or 'cpu'}, "
          f"{os.cpu_count()} cores, 1 BLAS thread per process, load average "
          f"{os.getloadavg()[0]:.1f}; {args.rounds} alternating rounds of {args.iters} steps"
          + (", ranks pinned to cores" if args.bind else ""))
    runs = {}  # (procs, zero1) -> one result per round
    for _ in range(args.rounds):  # alternate, so load on a shared machine hits all runs
        for n in args.procs:
            for zero1 in modes:
                runs.setdefault((n, zero1), []).append(launch(n, args, zero1))
    base_n = args.procs[0]
    print(f"{'procs':>5} {'zero1':>5} {'ms/step':>8} {'tokens/s':>9} {'efficiency: median':>18} "
          f"{'(min-max)':>13} {'comm':>5}  fwd/bwd/sync/clip/step ms  optim MB  RSS MB")
    table = {}
    for (n, zero1), rs in sorted(runs.items()):
        # efficiency per round, against the same round's one-process run of the same mode:
        # side by side, so slow spells of a shared machine hit both
        effs = [r["tokens_per_s"] * base_n / (n * b["tokens_per_s"])
                for r, b in zip(rs, runs[(base_n, zero1)])]
        mid = sorted(rs, key=lambda r: r["tokens_per_s"])[len(rs) // 2]  # the median run
        row = {**mid, "efficiency_median": float(np.median(effs)), "efficiency_min": min(effs),
               "efficiency_max": max(effs), "tokens_per_s_rounds": [round(r["tokens_per_s"])
                                                                    for r in rs]}
        table[f"{n}{'z' if zero1 else ''}"] = row
        phases = "/".join(f"{v:.0f}" for v in mid["phase_ms"].values())
        print(f"{n:>5} {'yes' if zero1 else 'no':>5} {mid['ms_per_step']:>8.0f} "
              f"{mid['tokens_per_s']:>9.0f} {row['efficiency_median']:>18.1%} "
              f"{row['efficiency_min']:>6.0%}-{row['efficiency_max']:<6.0%} "
              f"{mid['comm_share']:>5.1%}  {phases:<25} {mid['optimizer_state_mb']!s:>8} "
              f"{mid['peak_rss_mb']!s}")
    print(json.dumps(table))

if __name__ == "__main__":
    main()

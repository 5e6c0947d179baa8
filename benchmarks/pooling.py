"""Pooling and resizing, forward + backward of op(x).sum(), tinygen beside PyTorch.

    python benchmarks/pooling.py [--batch 64] [--channels 64] [--size 32] [--threads 1]

The two libraries alternate for a few rounds (machine noise hits both alike); each cell
is the best round's median. PyTorch runs on --threads threads (NumPy's ops here are
single-threaded). CPU only.
"""

import argparse

import numpy as np
from common import timed

import tinygen as tg
import tinygen.nn.functional as F

try:
    import torch
    import torch.nn.functional as TF
except ImportError:
    torch = None

WORKLOADS = [  # (name, tinygen op, PyTorch op)
    ("max_pool2d(2)", lambda t: F.max_pool2d(t, 2), lambda t: TF.max_pool2d(t, 2)),
    ("max_pool2d(3, 2, 1)", lambda t: F.max_pool2d(t, 3, 2, 1),
     lambda t: TF.max_pool2d(t, 3, 2, 1)),
    ("avg_pool2d(2)", lambda t: F.avg_pool2d(t, 2), lambda t: TF.avg_pool2d(t, 2)),
    ("avg_pool2d(3, 1, 1)", lambda t: F.avg_pool2d(t, 3, 1, 1),
     lambda t: TF.avg_pool2d(t, 3, 1, 1)),
    ("adaptive_avg_pool2d(1)", lambda t: F.adaptive_avg_pool2d(t, 1),
     lambda t: TF.adaptive_avg_pool2d(t, 1)),
    ("interpolate x2 nearest", lambda t: F.interpolate(t, scale_factor=2),
     lambda t: TF.interpolate(t, scale_factor=2)),
    ("interpolate x2 bilinear", lambda t: F.interpolate(t, scale_factor=2, mode="bilinear"),
     lambda t: TF.interpolate(t, scale_factor=2, mode="bilinear")),
]


def step_for(lib, op, x):
    a = tg.tensor(x, requires_grad=True) if lib == "tinygen" else torch.tensor(
        x, requires_grad=True)

    def step():
        a.grad = None
        loss = op(a).sum()
        loss.backward()
        return float(loss.item())
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if torch is not None:
        torch.set_num_threads(args.threads)
    x = np.random.default_rng(0).standard_normal(
        (args.batch, args.channels, args.size, args.size)).astype(np.float32)
    print(f"x {list(x.shape)} float32, forward + backward, median of {args.iters}, best of "
          f"{args.rounds} rounds; PyTorch on {args.threads} thread(s)")
    print(f"{'op':26s} {'tinygen':>10s} {'PyTorch':>10s}")
    for name, ours, theirs in WORKLOADS:
        best = {"tinygen": float("inf"), "torch": float("inf")}
        for _ in range(args.rounds):
            for lib, op in (("tinygen", ours), ("torch", theirs)):
                if lib == "torch" and torch is None:
                    continue
                ms, _ = timed(step_for(lib, op, x), args.iters, lambda: None, warmup=1)
                best[lib] = min(best[lib], ms)
        theirs_ms = f"{best['torch']:8.1f}ms" if torch is not None else "       -"
        print(f"{name:26s} {best['tinygen']:8.1f}ms {theirs_ms}")


if __name__ == "__main__":
    main()

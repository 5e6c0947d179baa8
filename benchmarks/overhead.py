"""Per-op cost of the engine: one small op with autograd recording, forward and backward.

Small models pay this on every op of every step, so it is the engine's own speed limit.
Runs the same ops in PyTorch side by side when it is installed and prints the ratio.

    python benchmarks/overhead.py [--n 64] [--repeat 2000]
"""

import argparse
import platform
import time

import numpy as np

import tinygen as tg

try:
    import torch
except ImportError:
    torch = None


def best_of(fn, repeat, rounds=5):
    """Microseconds per call: the best of a few rounds (noise only ever adds time)."""
    for _ in range(repeat // 10):
        fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - start) / repeat)
    return best * 1e6


def cases(lib, a, b):
    """name -> a zero-argument function doing one op (and its backward) in `lib`."""
    def fwd_bwd(op):
        def run():
            a.grad = b.grad = None
            op(a, b).sum().backward()
        return run

    if lib == "torch":
        no_grad = torch.no_grad
    else:
        no_grad = tg.no_grad

    def no_graph(op):
        def run():
            with no_grad():
                op(a, b)
        return run

    add, mm = (lambda x, y: x + y), (lambda x, y: x @ y)
    return {
        "add forward (recording)": lambda: add(a, b),
        "matmul forward (recording)": lambda: mm(a, b),
        "add forward, no_grad": no_graph(add),
        "add + sum + backward": fwd_bwd(add),
        "matmul + sum + backward": fwd_bwd(mm),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal((args.n, args.n), dtype=np.float32) for _ in range(2))
    ours = cases("tg", tg.tensor(x, requires_grad=True), tg.tensor(y, requires_grad=True))
    theirs = {}
    if torch is not None:
        torch.set_num_threads(max(1, torch.get_num_threads()))
        theirs = cases("torch", torch.tensor(x, requires_grad=True),
                       torch.tensor(y, requires_grad=True))

    print(f"{args.n}x{args.n} float32 on {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__ if torch else 'not installed'}")
    print(f"{'op':30s} {'tinygen µs':>11s} {'torch µs':>9s} {'ratio':>6s}")
    for name in ours:
        t_ours = best_of(ours[name], args.repeat)
        if torch is not None:
            t_theirs = best_of(theirs[name], args.repeat)
            print(f"{name:30s} {t_ours:11.1f} {t_theirs:9.1f} {t_ours / t_theirs:6.2f}")
        else:
            print(f"{name:30s} {t_ours:11.1f} {'-':>9s} {'-':>6s}")


if __name__ == "__main__":
    main()

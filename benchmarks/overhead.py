"""Per-op cost of the engine: one small op with autograd recording, forward and backward.

Small models pay this on every op of every step, so it is the engine's own speed limit.
Runs the same ops in PyTorch side by side when it is installed and prints the ratio.

    python benchmarks/overhead.py [--n 64] [--repeat 2000]
    python benchmarks/overhead.py --against /path/to/other/tinygen/checkout [--trials 15]

`--against` measures this source tree and another one (an older commit checked out in a
worktree, say) in alternating subprocesses, each importing tinygen from its own tree and
timed by this same file, and prints every row's median over the trials before and after:
machine noise then hits both trees alike, and one run answers "is it slower than before?".
It also counts the Python function calls per op in each tree (cProfile), which no noise
moves: the engine's per-op work, before and after.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

import tinygen as tg

torch = None  # imported in main() unless this is a --worker (it loads its own BLAS threads)


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


def inputs(n):
    rng = np.random.default_rng(0)
    return [rng.standard_normal((n, n), dtype=np.float32) for _ in range(2)]


def tinygen_cases(n):
    x, y = inputs(n)
    return cases("tg", tg.tensor(x, requires_grad=True), tg.tensor(y, requires_grad=True))


def tinygen_times(n, repeat):
    """{row: µs} for the tinygen that this process imported."""
    return {name: best_of(fn, repeat) for name, fn in tinygen_cases(n).items()}


def python_calls(n, calls=200):
    """{row: Python function calls per op} (cProfile's count): the engine's own work,
    exact and immune to machine noise, unlike the times."""
    import cProfile
    import pstats

    out = {}
    for name, fn in tinygen_cases(n).items():
        fn()
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(calls):
            fn()
        profile.disable()
        out[name] = pstats.Stats(profile).total_calls / calls
    return out


def against(args):
    """Alternate subprocesses of this file on the two trees; print medians side by side."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    trees = {"before": os.path.abspath(args.against), "after": here}
    samples = {label: [] for label in trees}
    calls = {}
    for trial in range(args.trials):
        order = list(trees) if trial % 2 == 0 else list(trees)[::-1]  # ABBA: drift cancels
        for label in order:
            env = dict(os.environ, PYTHONPATH=trees[label])
            out = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--worker", "--n", str(args.n),
                 "--repeat", str(args.repeat)], env=env, capture_output=True, text=True,
                check=True, cwd=trees[label]).stdout
            result = json.loads(out)
            if os.path.dirname(os.path.dirname(result.pop("_tinygen"))) != trees[label]:
                raise RuntimeError(f"overhead: the {label} worker imported tinygen from "
                                   f"outside {trees[label]}")
            calls[label] = result.pop("_calls")
            samples[label].append(result)
    print(f"{args.n}x{args.n} float32 on {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; {args.trials} alternating subprocess trials per tree, "
          f"each row the best of 5 rounds of {args.repeat} calls; medians over trials")
    print(f"before: {trees['before']}\nafter:  {trees['after']}")
    print(f"{'op':30s} {'before µs':>10s} {'after µs':>9s} {'after/before':>13s} "
          f"{'spread (after)':>15s} {'Python calls/op before, after':>30s}")
    for name in samples["after"][0]:
        b = statistics.median(s[name] for s in samples["before"])
        after = [s[name] for s in samples["after"]]
        a = statistics.median(after)
        q = statistics.quantiles(after, n=4) if len(after) > 1 else [a, a, a]
        print(f"{name:30s} {b:10.2f} {a:9.2f} {a / b:13.3f} {q[0]:7.1f}-{q[2]:<7.1f} "
              f"{calls['before'][name]:16.0f}, {calls['after'][name]:.0f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--against", metavar="TREE",
                        help="another tinygen source tree to compare with, side by side")
    parser.add_argument("--trials", type=int, default=15,
                        help="alternating subprocess runs per tree (with --against)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.n < 1 or args.repeat < 10 or args.trials < 1:
        parser.error("--n must be >= 1, --repeat >= 10 and --trials >= 1")
    if args.worker:  # one trial of --against: JSON on stdout, no torch
        times = tinygen_times(args.n, args.repeat)
        print(json.dumps(dict(times, _tinygen=os.path.abspath(tg.__file__),
                              _calls=python_calls(args.n))))
        return
    if args.against:
        if not os.path.isdir(os.path.join(args.against, "tinygen")):
            parser.error(f"--against {args.against}: no tinygen/ package in that folder")
        against(args)
        return

    global torch
    try:
        import torch
    except ImportError:
        pass
    x, y = inputs(args.n)
    theirs = {}
    if torch is not None:
        torch.set_num_threads(max(1, torch.get_num_threads()))
        theirs = cases("torch", torch.tensor(x, requires_grad=True),
                       torch.tensor(y, requires_grad=True))
    ours = tinygen_times(args.n, args.repeat)

    print(f"{args.n}x{args.n} float32 on {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__ if torch else 'not installed'}")
    print(f"{'op':30s} {'tinygen µs':>11s} {'torch µs':>9s} {'ratio':>6s}")
    for name, t_ours in ours.items():
        if torch is not None:
            t_theirs = best_of(theirs[name], args.repeat)
            print(f"{name:30s} {t_ours:11.1f} {t_theirs:9.1f} {t_ours / t_theirs:6.2f}")
        else:
            print(f"{name:30s} {t_ours:11.1f} {'-':>9s} {'-':>6s}")


if __name__ == "__main__":
    main()

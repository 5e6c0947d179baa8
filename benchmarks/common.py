"""What the side-by-side benchmarks (conv.py, clip.py, dalle.py, ppo.py) share: a timer,
copying a tinygen model's weights into its PyTorch twin (the parity tests use it too), and
the loop that alternates the two libraries for a few rounds (so machine noise hits both
alike) and prints the table."""

import os
import platform
import time

import numpy as np

import tinygen as tg

try:
    import torch
except ImportError:
    torch = None


def timed(step, iters, sync, warmup=3):
    """(median ms per step, first loss): `step()` returns the loss as a float."""
    first = step()
    for _ in range(warmup - 1):
        step()
    sync()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times)), first


def copy_weights(torch_model, tinygen_model):
    """Load a tinygen model's state_dict into its PyTorch twin (same names and shapes);
    strict, so a twin that drifted from the model fails here instead of timing garbage."""
    state = {k: torch.from_numpy(np.array(v.numpy()))
             for k, v in tinygen_model.state_dict().items()}
    torch_model.load_state_dict(state)
    return torch_model


def setup(args):
    """Match PyTorch's threads to NumPy's BLAS (OPENBLAS_NUM_THREADS, else all cores), print
    the machine line, and return the libraries to run."""
    threads = int(os.environ.get("OPENBLAS_NUM_THREADS", os.cpu_count()))
    if torch is not None:
        torch.set_num_threads(threads)
    extra = ", ".join(f"{k} {v}" for k, v in vars(args).items() if k not in ("device",))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, device {args.device}; "
          f"numpy {np.__version__}; torch {torch.__version__ if torch else 'not installed'}; "
          f"{threads} threads; {extra}")
    return ["tinygen"] + (["torch"] if torch is not None else [])


def sync_for(lib, device):
    if lib == "tinygen":
        return lambda: tg.backend.synchronize(device)
    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def compare(workloads, names, args):
    """Run `workloads(lib, args) -> {name: step}` for each library, `args.rounds` times,
    alternating; print each workload's best median ms/iter, its first loss (the two
    libraries must agree) and the tinygen/PyTorch ratio. Returns {(name, lib): ms}."""
    libs = setup(args)
    best = {}
    for _ in range(args.rounds):
        for lib in libs:
            for name, step in workloads(lib, args).items():
                ms, loss = timed(step, args.iters, sync_for(lib, args.device))
                prev = best.get((name, lib))
                best[name, lib] = (min(ms, prev[0]) if prev else ms, loss)
    print(f"{'workload':12s} {'lib':8s} {'ms/iter':>9s} {'loss@0':>8s} {'ratio':>6s}")
    for name in names:
        for lib in libs:
            ms, loss = best[name, lib]
            ratio = ms / best[name, "torch"][0] if torch is not None else float("nan")
            print(f"{name:12s} {lib:8s} {ms:9.1f} {loss:8.4f} {ratio:6.2f}")
    return {key: ms for key, (ms, _) in best.items()}


def add_arguments(parser, batch=None, iters=15, rounds=3):
    """The benchmarks' flags; --batch only where the workloads take one."""
    if batch is not None:
        parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--iters", type=int, default=iters, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=rounds,
                        help="alternating runs per library")
    parser.add_argument("--device", default="cpu")
    return parser

"""What the side-by-side benchmarks (conv.py, clip.py, dalle.py, ppo.py) share: a timer,
copying a tinygen model's weights into its PyTorch twin (the parity tests use it too), and
the loop that alternates the two libraries for a few rounds (so machine noise hits both
alike) and prints the table."""

import contextlib
import os
import platform
import subprocess
import sys
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


def compare(workloads, names, args, floor=()):
    """Run `workloads(lib, args) -> {name: step}` for each library, `args.rounds` times,
    alternating; print each workload's best median ms/iter, its first loss (the two
    libraries must agree) and the tinygen/PyTorch ratio. Returns {(name, lib): ms}.
    `floor`: the workloads' main matrix-product shapes [(M, K, N), ...]; on the CPU their
    BLAS floor (print_blas_floor) is printed first."""
    libs = setup(args)
    if floor and args.device == "cpu":
        print_blas_floor(floor)
    best, rounds = {}, {}
    for _ in range(args.rounds):
        for lib in libs:
            for name, step in workloads(lib, args).items():
                ms, loss = timed(step, args.iters, sync_for(lib, args.device))
                prev = best.get((name, lib))
                best[name, lib] = (min(ms, prev[0]) if prev else ms, loss)
                rounds.setdefault((name, lib), []).append(ms)
    print(f"{'workload':12s} {'lib':8s} {'ms/iter':>9s} {'loss@0':>8s} {'ratio':>6s}"
          + ("  per round (median)" if torch is not None else ""))
    for name in names:
        for lib in libs:
            ms, loss = best[name, lib]
            ratio = ms / best[name, "torch"][0] if torch is not None else float("nan")
            paired = ""
            if torch is not None and lib != "torch":  # the two ran back to back each round
                each = [a / b for a, b in zip(rounds[name, lib], rounds[name, "torch"])]
                paired = "  " + " ".join(f"{r:.2f}" for r in each) + f" ({np.median(each):.2f})"
            print(f"{name:12s} {lib:8s} {ms:9.1f} {loss:8.4f} {ratio:6.2f}{paired}")
    if torch is not None and args.device == "cpu":
        print_products_floor(workloads, names, args, {k: ms for k, (ms, _) in best.items()})
    return {key: ms for key, (ms, _) in best.items()}


def print_products_floor(workloads, names, args, best):
    """One more tinygen run of each workload with its BLAS products timed (`products_timed`):
    how much of the step they are, and how they compare with PyTorch's whole step. Products
    alone near PyTorch's step are a floor no elementwise work lowers: PyTorch's conv layers
    (oneDNN) run without im2col's columns, at a speed OpenBLAS's sgemm does not reach."""
    print("tinygen's matrix products (the conv and linear layers' BLAS calls), one more run:")
    steps = workloads("tinygen", args)
    for name in names:
        for _ in range(3):                           # warm up outside the count
            steps[name]()
        with products_timed() as products:
            ms, _ = timed(steps[name], args.iters, sync_for("tinygen", args.device), warmup=1)
        calls = args.iters + 1                       # the mean over all steps counted
        p_ms, gflop = 1e3 * products["seconds"] / calls, products["flops"] / calls / 1e9
        print(f"{name:12s} products {p_ms:6.1f} ms of {ms:6.1f} ({gflop:.2f} GFLOP/step, "
              f"{gflop / p_ms * 1e3:4.0f} GFLOP/s); PyTorch's whole step {best[name, 'torch']:.1f}:"
              f" products alone {p_ms / best[name, 'torch']:.2f}x it")


@contextlib.contextmanager
def products_timed():
    """Time every tinygen.blocked.matmul / matmul_long_inner call (all of the conv and
    linear layers' products; not attention's small batched ones) while the block runs:
    yields {"seconds", "flops"}, filled in as the products run. Patches the names where the
    library's modules imported them, and puts them back after."""
    from tinygen import blocked

    total = {"seconds": 0.0, "flops": 0.0}
    originals = {blocked.matmul, blocked.matmul_long_inner}

    def timing(f):
        def product(a, b):
            t0 = time.perf_counter()
            out = f(a, b)
            total["seconds"] += time.perf_counter() - t0
            total["flops"] += 2.0 * out.size * a.shape[-1]
            return out
        return product

    patched = [(m, k, v) for m in list(sys.modules.values())
               if getattr(m, "__name__", "").startswith("tinygen")
               for k, v in vars(m).items() if any(v is o for o in originals)]
    for m, k, v in patched:
        setattr(m, k, timing(v))
    try:
        yield total
    finally:
        for m, k, v in patched:
            setattr(m, k, v)


def add_arguments(parser, batch=None, iters=15, rounds=3):
    """The benchmarks' flags; --batch only where the workloads take one."""
    if batch is not None:
        parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--iters", type=int, default=iters, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=rounds,
                        help="alternating runs per library")
    parser.add_argument("--device", default="cpu")
    return parser


# ---- the BLAS floor: which BLAS each library runs, and how fast its sgemm is ---------------

def numpy_blas():
    """{library, version, config, core, threads, pinned} of NumPy's BLAS, as this process
    runs it: numpy.show_config's build record, then OpenBLAS itself (tinygen.threads'
    openblas_kernels) for the kernels DYNAMIC_ARCH picked on this CPU, and threadpoolctl's
    view when installed. `pinned`: where OPENBLAS_CORETYPE chose the kernels instead of
    OpenBLAS's detection, what a process without it gets."""
    from tinygen.threads import openblas_kernels

    blas = np.show_config("dicts")["Build Dependencies"].get("blas", {})
    info = {"library": blas.get("name", "?"), "version": blas.get("version", "?"),
            "config": " ".join(str(blas.get("openblas configuration", "")).split()),
            "core": "?", "threads": tg.get_num_threads(), "pinned": None}
    kernels = openblas_kernels()
    if kernels is not None:
        info["core"], info["config"] = kernels
        if "OPENBLAS_CORETYPE" in os.environ:
            info["pinned"] = _detected_kernels()
    try:
        from threadpoolctl import threadpool_info
        pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        if pools:
            info["threadpoolctl"] = ", ".join(
                f"{p['internal_api']} {p['version']} {p.get('architecture')} "
                f"{p['num_threads']} threads" for p in pools)
    except ImportError:
        pass
    return info


def _detected_kernels():
    """The kernels OpenBLAS's own detection picks on this CPU: asked of a fresh Python
    without OPENBLAS_CORETYPE."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    code = "import numpy; from tinygen.threads import openblas_kernels as k; print(k()[0])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=False)
    return out.stdout.strip() or "?"


def sgemm_gflops(shapes, threads=None, repeats=20):
    """{(M, K, N): {"numpy": GFLOP/s, "torch": GFLOP/s}} for float32 [M, K] @ [K, N], the
    second operand transposed in memory as a Linear's weight is (x @ W.T); best of
    `repeats`, both libraries at `threads` threads (None: as they are)."""
    if threads is not None:
        before = (tg.get_num_threads(), torch.get_num_threads() if torch else None)
        tg.set_num_threads(threads)
        if torch is not None:
            torch.set_num_threads(threads)
        try:
            return sgemm_gflops(shapes, None, repeats)
        finally:
            tg.set_num_threads(before[0])
            if torch is not None:
                torch.set_num_threads(before[1])
    rng = np.random.default_rng(0)
    out = {}
    for M, K, N in shapes:
        a = rng.standard_normal((M, K), dtype=np.float32)
        w = rng.standard_normal((N, K), dtype=np.float32)
        flops, res = 2.0 * M * K * N, {}
        runs = [("numpy", a, w)]
        if torch is not None:
            runs.append(("torch", torch.from_numpy(a), torch.from_numpy(w)))
        for lib, x, y in runs:
            def f(x=x, y=y):
                return x @ y.T
            for _ in range(3):  # warm up (thread pools, packing buffers)
                f()
            best = min(_seconds(f) for _ in range(repeats))
            res[lib] = flops / best / 1e9
        out[M, K, N] = res
    return out


def _seconds(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def print_blas_floor(shapes):
    """Print NumPy's BLAS (library, version, kernels, threads) and the sgemm GFLOP/s of
    NumPy and PyTorch at `shapes` [(M, K, N), ...]: the floor under every ratio printed after
    it (where NumPy's sgemm is slower, no elementwise work closes that part of the gap).
    Returns the GFLOP/s table."""
    info = numpy_blas()
    pinned = (f" (pinned by OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']}; "
              f"unpinned, OpenBLAS picks {info['pinned']} here)" if info["pinned"] else "")
    print(f"numpy BLAS: {info['library']} {info['version']}, kernels {info['core']}{pinned}, "
          f"{info['threads']} threads; {info['config']}")
    if "threadpoolctl" in info:
        print(f"  threadpoolctl: {info['threadpoolctl']}")
    if torch is not None:
        print(f"torch: {torch.__version__}, {torch.get_num_threads()} threads, "
              f"{torch.backends.cpu.get_cpu_capability()}, BLAS "
              f"{'MKL' if torch.backends.mkl.is_available() else 'not MKL'}, "
              f"mkldnn {torch.backends.mkldnn.is_available()}")
    n = info["threads"] or 1
    tables = {n: sgemm_gflops(shapes, n)}
    if n > 1:  # one thread as well: the kernels alone, what a busy machine cannot distort
        tables[1] = sgemm_gflops(shapes, 1)
    for threads, table in tables.items():
        for (M, K, N), res in table.items():
            line = (f"  sgemm [{M}, {K}] @ [{K}, {N}], {threads} thread{'s' * (threads > 1)}: "
                    f"numpy {res['numpy']:6.1f} GFLOP/s")
            if "torch" in res:
                line += (f", torch {res['torch']:6.1f}, numpy/torch time "
                         f"{res['torch'] / res['numpy']:.2f}x")
            print(line)
    return tables

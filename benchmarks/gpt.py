"""GPT training step (forward, backward, grad clip, AdamW) in tinygen and PyTorch.

Both libraries train the same model from the same weights on the same batches. Each runs
in its own subprocess, so its peak memory (max RSS) is its own, and the two alternate
for a few rounds so that machine noise hits both alike. Prints ms/iter, tokens/s, peak
memory and the tinygen/PyTorch ratio for each config.

    python benchmarks/gpt.py                      # both nanoGPT configs on the CPU
    python benchmarks/gpt.py --config cpu --rounds 3 --iters 20
    python benchmarks/gpt.py --device cuda        # on a GPU (batch 64 for the big config)
    python benchmarks/gpt.py --libs tinygen,tinygen-unblocked,torch   # tinygen.blocked off too

First it prints NumPy's BLAS (library, version, kernels, threads) and the sgemm GFLOP/s of
NumPy and PyTorch at the step's main matrix shapes (benchmarks/common.py): the floor under
the ratios, which no elementwise work can lower. Last, per config, how long tinygen's Linear
products take inside its step (timed over a few more steps), and so what the rest takes.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
from procmem import peak_rss_mib

CONFIGS = {  # nanoGPT's CPU config and its shakespeare-char config
    "cpu": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "batch": 12},
    "shakespeare-char": {"n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256,
                         "batch": 8, "batch_cuda": 64},
}
VOCAB = 65


def batches(cfg, n, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n, cfg["batch"], cfg["block_size"])
    return rng.integers(0, VOCAB, shape), rng.integers(0, VOCAB, shape)


def run_tinygen(cfg, weights, iters, device):
    import tinygen as tg
    from tinygen.models.gpt import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=VOCAB, dropout=0.0, bias=True, **model_args(cfg)))
    model.load_state_dict(tg.load(weights))
    model.to(device)
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    xs, ys = batches(cfg, iters)
    xs, ys = tg.tensor(xs, device=device), tg.tensor(ys, device=device)

    def step(i):
        _, loss = model(xs[i].data, ys[i].data)
        opt.zero_grad()
        loss.backward()
        tg.optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    result = timed(step, iters, lambda: tg.backend.synchronize(device))
    if device == "cpu":  # a few steps more, every Linear's product timed (common.py)
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from common import products_timed
        n = min(iters, 5)
        with products_timed() as products:
            for i in range(n):
                step(i)
        result["products_ms"] = 1000 * products["seconds"] / n
    return result


def run_torch(cfg, weights, iters, device):
    import torch

    import tinygen as tg
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_gpt import TorchGPT

    model = TorchGPT(VOCAB, **model_args(cfg))
    state = {k: torch.from_numpy(v.numpy()) for k, v in tg.load(weights).items()}
    model.load_state_dict(state)
    model.to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99))
    xs, ys = (torch.from_numpy(a).to(device) for a in batches(cfg, iters))

    def step(i):
        _, loss = model(xs[i], ys[i])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    return timed(step, iters, sync)


def gemm_shapes(cfg):
    """The step's main matrix products (M, K, N) for x @ W.T: the MLP's c_fc forward, its
    c_proj forward, and c_fc's weight gradient ([4C, N] @ [N, C])."""
    N, C = cfg["batch"] * cfg["block_size"], cfg["n_embd"]
    return [(N, C, 4 * C), (N, 4 * C, C), (4 * C, N, C)]


def model_args(cfg):
    return {k: cfg[k] for k in ("n_layer", "n_head", "n_embd", "block_size")}


def timed(step, iters, sync):
    warmup = 3
    losses = [step(i) for i in range(warmup)]
    sync()
    times = []
    for i in range(warmup, iters):
        t0 = time.perf_counter()
        losses.append(step(i))
        sync()
        times.append(time.perf_counter() - t0)
    return {"ms": 1000 * float(np.median(times)), "losses": losses,
            "peak_mib": peak_rss_mib()}


def print_paired(name, results):
    """Each round's tinygen/torch ratio (the two ran one after the other, so a machine's
    drift between rounds cancels) and their median: on a noisy machine a steadier figure
    than the ratio of the two best rounds, which may come from different moments."""
    for lib in (lib for lib in results if lib != "torch"):
        ratios = [a["ms"] / b["ms"] for a, b in zip(results[lib], results["torch"])]
        print(f"{name:18s} {lib}/torch per round: " + " ".join(f"{r:.2f}" for r in ratios)
              + f" (median {float(np.median(ratios)):.2f}x)")


def child(args):
    """Runs inside the subprocess: one library, one config; prints a JSON line."""
    cfg = dict(CONFIGS[args.config])
    if args.device == "cuda" and "batch_cuda" in cfg:
        cfg["batch"] = cfg["batch_cuda"]
    run = run_tinygen if args.lib == "tinygen" else run_torch
    print(json.dumps(run(cfg, args.weights, args.iters, args.device)))


def spawn(lib, args, config, weights):
    """Run one library's child; 'tinygen-unblocked' is tinygen with TINYGEN_BLOCKED=0 (its
    elementwise formulas on whole arrays: what tinygen.blocked gains), 'tinygen-threaded'
    with TINYGEN_BLOCKED_THREADS=auto (the blocks on tg.get_num_threads() threads)."""
    env = dict(os.environ, **{"tinygen-unblocked": {"TINYGEN_BLOCKED": "0"},
                              "tinygen-threaded": {"TINYGEN_BLOCKED_THREADS": "auto"}}.get(
                                  lib, {}))
    child_lib = "tinygen" if lib.startswith("tinygen") else lib
    cmd = [sys.executable, __file__, "--child", child_lib, "--config", config, "--weights",
           weights, "--iters", str(args.iters), "--device", args.device]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{lib} run failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=[*CONFIGS, "all"], default="all")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--iters", type=int, default=0, help="steps per run (0: by config)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs per library")
    parser.add_argument("--libs", default="tinygen,torch",
                        help="comma-separated: tinygen, tinygen-unblocked, "
                             "tinygen-threaded, torch")
    parser.add_argument("--no-floor", action="store_true", help="skip the BLAS/sgemm lines")
    parser.add_argument("--child", choices=["tinygen", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.lib = args.child
        return child(args)

    import tinygen as tg
    from tinygen.models.gpt import GPT, GPTConfig
    try:
        import torch
        have_torch = True
    except ImportError:
        have_torch = False
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, device {args.device}; "
          f"numpy {np.__version__}; torch {torch.__version__ if have_torch else 'not installed'}")
    configs = list(CONFIGS) if args.config == "all" else [args.config]
    if not args.no_floor and args.device == "cpu":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from common import print_blas_floor
        print_blas_floor(sorted({shape for name in configs for shape in gemm_shapes(
            CONFIGS[name])}))
    print(f"{'config':18s} {'lib':17s} {'ms/iter':>9s} {'tokens/s':>9s} {'peak MiB':>9s} "
          f"{'loss@0':>7s} {'ratio':>6s}")
    for name in configs:
        cfg = CONFIGS[name]
        iters = args.iters or (30 if name == "cpu" else 8)
        args.iters = iters
        batch = cfg["batch_cuda"] if args.device == "cuda" and "batch_cuda" in cfg else cfg[
            "batch"]
        tg.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=VOCAB, **model_args(cfg)))
        with tempfile.TemporaryDirectory() as tmp:
            weights = os.path.join(tmp, "weights.safetensors")
            tg.save(model.state_dict(), weights)
            libs = [lib for lib in args.libs.split(",") if have_torch or lib != "torch"]
            results = {lib: [] for lib in libs}
            for _ in range(args.rounds):
                for lib in libs:
                    results[lib].append(spawn(lib, args, name, weights))
        best = {lib: min(rs, key=lambda r: r["ms"]) for lib, rs in results.items()}
        for lib, r in best.items():
            ratio = r["ms"] / best["torch"]["ms"] if "torch" in best else float("nan")
            tokens = batch * cfg["block_size"] / (r["ms"] / 1000)
            print(f"{name:18s} {lib:17s} {r['ms']:9.1f} {tokens:9.0f} {r['peak_mib']:9.0f} "
                  f"{r['losses'][0]:7.4f} {ratio:6.2f}")
        if "torch" in best and "tinygen" in best:
            mem = best["tinygen"]["peak_mib"] / best["torch"]["peak_mib"]
            print(f"{name:18s} tinygen/torch: time {best['tinygen']['ms'] / best['torch']['ms']:.2f}x"
                  f", peak memory {mem:.2f}x")
            print_paired(name, results)
            if "products_ms" in best["tinygen"]:
                p, ms = best["tinygen"]["products_ms"], best["tinygen"]["ms"]
                print(f"{name:18s} tinygen's Linear products {p:.1f} ms/step (5 more "
                      f"steps timed), the rest ~{ms - p:.1f} ms; PyTorch's whole step "
                      f"{best['torch']['ms']:.1f} ms")
        args.iters = 0


if __name__ == "__main__":
    main()

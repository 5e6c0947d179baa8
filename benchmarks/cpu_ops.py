"""The GPT step's elementwise ops one at a time, forward + backward, at a GPT config's shapes:
tinygen with its row blocks (tinygen.blocked) on all threads, the same on one thread, tinygen
without them (TINYGEN_BLOCKED=0's path: whole arrays, one thread) and PyTorch on all threads. Per-op time is what a profile of the whole step
spreads over many lines; here each op is timed alone, the three alternating, best of many
repeats (robust on a busy machine, where medians of the whole step are not).

    python benchmarks/cpu_ops.py                    # nanoGPT's CPU config (B*T = 768, C = 128)
    python benchmarks/cpu_ops.py --config shakespeare-char --repeats 30
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt import CONFIGS

import tinygen as tg
from tinygen import blocked, ops
from tinygen.optim.adam import AdamW

try:
    import torch
except ImportError:
    torch = None


def tinygen_ops(cfg, rng):
    """{name: step()} on raw arrays: each runs its Function's forward then backward."""
    B, T, C, nh = cfg["batch"], cfg["block_size"], cfg["n_embd"], cfg["n_head"]
    r = lambda *s: rng.standard_normal(s, dtype=np.float32)
    x4, g4 = r(B, T, 4 * C), r(B, T, 4 * C)
    x, g, w, b = r(B, T, C), r(B, T, C), r(C), r(C)
    q, k, v, ga = (r(B, nh, T, C // nh) for _ in range(4))
    logits, target = r(B * T, 65), rng.integers(0, 65, B * T)
    n_params = 12 * cfg["n_layer"] * C * C
    p, pg, m, s = r(n_params), r(n_params), r(n_params), np.abs(r(n_params))
    adam = AdamW.__new__(AdamW)
    group = {"lr": 1e-3, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": 0.1}

    def run(fn, *args, grad, **kw):
        fn.needs_input_grad = (True,) * 3
        fn.forward(*args, **kw)
        fn.backward(grad)

    return {
        "gelu [B,T,4C]": lambda: run(ops.GELUFunction(), x4, grad=g4),
        "layer_norm [B,T,C]": lambda: run(ops.LayerNormFunction(), x, w, b, grad=g),
        "attention softmax": lambda: run(ops.ScaledDotProductAttention(), q, k, v,
                                         is_causal=True, grad=ga),
        "cross_entropy": lambda: run(ops.CrossEntropy(), logits, target=target,
                                     grad=np.float32(1)),
        f"adamw {n_params / 1e6:.1f}M": lambda: adam._update(p, pg, m, s, 10, group),
    }


def torch_ops(cfg, rng):
    import torch.nn.functional as F
    B, T, C, nh = cfg["batch"], cfg["block_size"], cfg["n_embd"], cfg["n_head"]

    def r(*s, grad=True):
        return torch.from_numpy(rng.standard_normal(s, dtype=np.float32)).requires_grad_(grad)

    x4, g4, x, g = r(B, T, 4 * C), r(B, T, 4 * C, grad=False), r(B, T, C), r(B, T, C)
    w, b = r(C), r(C)
    q, k, v, ga = r(B, nh, T, C // nh), r(B, nh, T, C // nh), r(B, nh, T, C // nh), r(
        B, nh, T, C // nh, grad=False)
    logits, target = r(B * T, 65), torch.from_numpy(rng.integers(0, 65, B * T))
    n_params = 12 * cfg["n_layer"] * C * C
    param = torch.nn.Parameter(torch.randn(n_params))
    param.grad = torch.randn(n_params)
    opt = torch.optim.AdamW([param], lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    return {
        "gelu [B,T,4C]": lambda: F.gelu(x4, approximate="tanh").backward(g4),
        "layer_norm [B,T,C]": lambda: F.layer_norm(x, (C,), w, b).backward(g),
        "attention softmax": lambda: F.scaled_dot_product_attention(
            q, k, v, is_causal=True).backward(ga),
        "cross_entropy": lambda: F.cross_entropy(logits, target).backward(),
        f"adamw {n_params / 1e6:.1f}M": opt.step,
    }


def best_ms(f, repeats):
    f()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return 1000 * min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=list(CONFIGS), default="cpu")
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the three")
    args = parser.parse_args()
    cfg = CONFIGS[args.config]
    threads = tg.get_num_threads()
    if torch is not None:
        torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    mine = tinygen_ops(cfg, rng)
    runs = {"blocked": mine, "blocked-1": mine, "unblocked": mine}
    if torch is not None:
        runs["torch"] = torch_ops(cfg, rng)
    best = {}
    for _ in range(args.rounds):
        for lib, steps in runs.items():
            tg.set_num_threads(1 if lib in ("blocked-1", "unblocked") else threads)
            for name, step in steps.items():
                if lib == "unblocked":
                    with blocked.disabled():
                        ms = best_ms(step, args.repeats)
                else:
                    ms = best_ms(step, args.repeats)
                best[name, lib] = min(ms, best.get((name, lib), ms))
    tg.set_num_threads(threads)
    print(f"{args.config}: best of {args.rounds} x {args.repeats}, {threads} threads, "
          f"load average {os.getloadavg()[0]:.1f}; ms per forward + backward")
    libs = list(runs)
    print(f"{'op':22s}" + "".join(f"{lib:>11s}" for lib in libs) + "  blocked/torch")
    for name in runs["blocked"]:
        row = "".join(f"{best[name, lib]:11.3f}" for lib in libs)
        ratio = best[name, "blocked"] / best[name, "torch"] if torch is not None else float("nan")
        print(f"{name:22s}{row}  {ratio:8.2f}")


if __name__ == "__main__":
    main()

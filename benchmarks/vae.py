"""VAE training epochs in tinygen and PyTorch, side by side.

Both libraries train the same model (tinygen.models.vae and its twin in torch_vae.py) from
the same initial weights, on the same images in the same minibatch order, with Adam 1e-3
and batch 128; only the reparameterisation noise comes from each library's own generator.
Each library runs in its own subprocess, and the two alternate so that machine noise hits
both alike. Prints ms per epoch and the tinygen/PyTorch ratio; with --full it trains both
for --epochs epochs and prints each one's test negative ELBO and their relative difference
(the check that tinygen learns what PyTorch learns).

    python benchmarks/vae.py                         # one epoch each, twice, on the CPU
    python benchmarks/vae.py --epochs 10 --full      # the learning check (MLP, 10 epochs)
    python benchmarks/vae.py --threads 1             # one BLAS thread each (a busy machine)
    python benchmarks/vae.py --device cuda --model conv
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

BATCH, LR = 128, 1e-3
EVAL_BATCH = 1000


def load_data(dataset, n_train):
    from tinygen.data.images import load_images, to_float

    train, test = load_images(dataset, split="train"), load_images(dataset, split="test")
    x_train = to_float(train.images[:n_train] if n_train else train.images)
    return x_train, to_float(test.images), train.source


def run_tinygen(args, x_train, x_test):
    import tinygen as tg
    from tinygen import optim
    from tinygen.backend import synchronize
    from tinygen.data.images import iterate_minibatches
    from tinygen.models.vae import VAEConfig, build_vae

    tg.manual_seed(args.seed + 1)  # the noise; the weights come from the file
    model = build_vae(VAEConfig(model=args.model))
    model.load_state_dict(tg.load(args.weights))
    model.to(args.device)
    opt = optim.Adam(model.parameters(), lr=LR)
    order_rng = np.random.default_rng(args.seed)

    def epoch():
        total = 0.0
        for idx in iterate_minibatches(len(x_train), BATCH, order_rng):
            loss = model.neg_elbo(tg.tensor(x_train[idx], device=args.device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        synchronize(args.device)
        return total / len(x_train)

    @tg.no_grad()
    def test():
        return sum(model.neg_elbo(tg.tensor(x_test[i:i + EVAL_BATCH], device=args.device))
                   .item() * len(x_test[i:i + EVAL_BATCH])
                   for i in range(0, len(x_test), EVAL_BATCH)) / len(x_test)

    return train(epoch, test, args)


def run_torch(args, x_train, x_test):
    import torch

    import tinygen as tg
    from tinygen.data.images import iterate_minibatches
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_vae import TorchConvVAE, TorchMLPVAE, neg_elbo

    torch.manual_seed(args.seed + 1)
    model = TorchMLPVAE() if args.model == "mlp" else TorchConvVAE()
    model.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in
                           tg.load(args.weights).items()})
    model.to(args.device)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    order_rng = np.random.default_rng(args.seed)

    def epoch():
        total = 0.0
        for idx in iterate_minibatches(len(x_train), BATCH, order_rng):
            loss = neg_elbo(model, torch.from_numpy(x_train[idx]).to(args.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        if args.device == "cuda":
            torch.cuda.synchronize()
        return total / len(x_train)

    @torch.no_grad()
    def test():
        return sum(neg_elbo(model, torch.from_numpy(x_test[i:i + EVAL_BATCH]).to(args.device))
                   .item() * len(x_test[i:i + EVAL_BATCH])
                   for i in range(0, len(x_test), EVAL_BATCH)) / len(x_test)

    return train(epoch, test, args)


def train(epoch, test, args):
    """Run the epochs (timing each), then the test set if --full."""
    times, losses = [], []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        losses.append(epoch())
        times.append(time.perf_counter() - t0)
    result = {"epoch_ms": [1000 * t for t in times], "train_neg_elbo": losses}
    if args.full:
        result["test_neg_elbo"] = test()
    return result


def child(args):
    x_train, x_test, _ = load_data(args.dataset, args.n_train)
    run = run_tinygen if args.child == "tinygen" else run_torch
    print(json.dumps(run(args, x_train, x_test)))


def spawn(lib, args, weights):
    cmd = [sys.executable, __file__, "--child", lib, "--weights", weights]
    for name in ("model", "dataset", "device", "epochs", "n_train", "seed"):
        cmd += [f"--{name}", str(getattr(args, name))]
    cmd += ["--full"] if args.full else []
    env = dict(os.environ)
    if args.threads:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(args.threads)
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{lib} run failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["mlp", "conv"], default="mlp")
    parser.add_argument("--dataset", default="auto", help="fashion | mnist | procedural | auto")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per run")
    parser.add_argument("--full", action="store_true", help="also evaluate the test set")
    parser.add_argument("--rounds", type=int, default=0,
                        help="alternating runs per library (default: 2, or 1 with --full)")
    parser.add_argument("--n_train", type=int, default=0, help="use the first N train images")
    parser.add_argument("--threads", type=int, default=0,
                        help="BLAS/OpenMP threads per library (0: leave the machine's setting)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=["tinygen", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    import tinygen as tg
    from tinygen.models.vae import VAEConfig, build_vae
    try:
        import torch
        libs, torch_version = ["tinygen", "torch"], torch.__version__
    except ImportError:
        libs, torch_version = ["tinygen"], "not installed"
    _, _, source = load_data(args.dataset, 1)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, device {args.device}, "
          f"threads {args.threads or 'default'}; numpy {np.__version__}; torch {torch_version}")
    print(f"data: {source}{f', first {args.n_train}' if args.n_train else ''}; "
          f"{args.model} VAE, batch {BATCH}, Adam {LR}, {args.epochs} epoch(s) per run")

    tg.manual_seed(args.seed)
    model = build_vae(VAEConfig(model=args.model))
    results = {lib: [] for lib in libs}
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "weights.safetensors")
        tg.save(model.state_dict(), weights)
        for _ in range(args.rounds or (1 if args.full else 2)):
            for lib in libs:
                results[lib].append(spawn(lib, args, weights))

    ms = {lib: float(np.min([np.median(r["epoch_ms"]) for r in rs]))
          for lib, rs in results.items()}
    print(f"{'lib':8s} {'ms/epoch':>9s} {'train -ELBO':>12s} {'test -ELBO':>11s}")
    for lib, rs in results.items():
        test = rs[-1].get("test_neg_elbo")  # evaluated only with --full
        test = f"{test:11.3f}" if test is not None else f"{'(--full)':>11s}"
        print(f"{lib:8s} {ms[lib]:9.0f} {rs[-1]['train_neg_elbo'][-1]:12.3f} {test}")
    summary = {"model": args.model, "device": args.device, "epochs": args.epochs,
               "tinygen_ms_per_epoch": round(ms["tinygen"])}
    if "torch" in results:
        ratio = ms["tinygen"] / ms["torch"]
        print(f"tinygen/torch epoch time: {ratio:.2f}x")
        summary.update(torch_ms_per_epoch=round(ms["torch"]), time_ratio=round(ratio, 3))
        if args.full:
            a, b = results["tinygen"][-1]["test_neg_elbo"], results["torch"][-1]["test_neg_elbo"]
            rel = (a - b) / b
            print(f"test negative ELBO (nats/image): tinygen {a:.3f}, torch {b:.3f}, "
                  f"relative difference {100 * rel:+.2f}%")
            summary.update(tinygen_test_neg_elbo=round(a, 3), torch_test_neg_elbo=round(b, 3),
                           relative_difference=round(rel, 5))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

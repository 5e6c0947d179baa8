"""The residual net's conv layers one at a time, forward + backward, with the two ways
ops/conv.py can read a layer's columns: im2col's full columns, and `conv_columns`' choice
(for the stride-1 layers that qualify, the kernel's width only, one block per kernel row:
im2col.RowTaps). Both run in one process, alternating layer call by layer call, so the
machine's drift hits them alike; medians of the rounds. Then PyTorch's conv2d forward +
backward at the same shapes, in a subprocess of its own (its threads and OpenBLAS's would
fight in one process).

    python benchmarks/conv_layers.py                 # batch 64, as benchmarks/conv.py
    python benchmarks/conv_layers.py --rounds 30 --batch 32
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

# (name, C_in, C_out, image size, stride): the 3x3 layers of benchmarks/conv.py's resnet
LAYERS = [("stem", 3, 16, 32, 1), ("stage 1", 16, 16, 32, 1), ("stage 2 down", 16, 32, 32, 2),
          ("stage 2", 32, 32, 16, 1), ("stage 3 down", 32, 64, 16, 2), ("stage 3", 64, 64, 8, 1)]


def tinygen_layer(c_in, c_out, size, stride, batch, rng, columns):
    """One forward + backward of Conv2dFunction on batch-last rows, reading its columns
    with `columns` (conv_columns' signature); returns the seconds it took."""
    from tinygen.backend import from_batch_last
    from tinygen.ops import conv

    x = from_batch_last(rng.standard_normal((c_in, size, size, batch), dtype=np.float32))
    w = rng.standard_normal((c_out, c_in, 3, 3), dtype=np.float32) * 0.1
    out = (size - 1) // stride + 1
    g = from_batch_last(rng.standard_normal((c_out, out, out, batch), dtype=np.float32))

    def run():
        before, conv.conv_columns = conv.conv_columns, columns
        try:
            f = conv.Conv2dFunction()
            f.needs_input_grad = (c_in > 3, True)     # the stem's input needs no gradient
            t = time.perf_counter()
            f.forward(x, w, None, (stride, stride), ((1, 1), (1, 1)), (1, 1), 1)
            f.backward(g)
            return time.perf_counter() - t
        finally:
            conv.conv_columns = before

    return run


def torch_child(batch, rounds):
    import torch

    torch.set_num_threads(int(os.environ.get("TORCH_THREADS", torch.get_num_threads())))
    times = {}
    for name, c_in, c_out, size, stride in LAYERS:
        x = torch.randn(batch, c_in, size, size, requires_grad=c_in > 3)
        w = torch.randn(c_out, c_in, 3, 3, requires_grad=True)
        y = torch.nn.functional.conv2d(x, w, stride=stride, padding=1)
        g = torch.randn_like(y)
        ts = []
        for _ in range(rounds + 2):
            x.grad = w.grad = None                  # as zero_grad(set_to_none=True)
            t = time.perf_counter()
            torch.nn.functional.conv2d(x, w, stride=stride, padding=1).backward(g)
            ts.append(time.perf_counter() - t)
        times[name] = float(np.median(ts[2:]))
    print(json.dumps(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--torch-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_child:
        return torch_child(args.batch, args.rounds)

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from tinygen.ops import conv
    from tinygen.ops.im2col import im2col

    def full(rows, kernel, stride, padding, out_size, dilation, groups, out_channels):
        return im2col(rows, kernel, stride, padding, out_size, dilation)

    paths = {"full columns": full, "conv_columns": conv.conv_columns}
    rng = np.random.default_rng(0)
    ours = {}
    for name, c_in, c_out, size, stride in LAYERS:
        runs = {p: tinygen_layer(c_in, c_out, size, stride, args.batch, rng, f)
                for p, f in paths.items()}
        for run in runs.values():
            run()                                      # warm up
        ts = {p: [] for p in paths}
        for _ in range(args.rounds):
            for p, run in runs.items():
                ts[p].append(run())
        ours[name] = {p: float(np.median(v)) for p, v in ts.items()}
    try:
        out = subprocess.run([sys.executable, __file__, "--torch-child", "--batch",
                              str(args.batch), "--rounds", str(args.rounds)],
                             capture_output=True, text=True, check=True)
        theirs = json.loads(out.stdout.strip().splitlines()[-1])
    except (subprocess.CalledProcessError, ValueError, IndexError):
        theirs = {}                                    # PyTorch not installed
    print(f"3x3 conv layers, forward + backward, batch {args.batch}, float32; medians of "
          f"{args.rounds} rounds, ms")
    print(f"{'layer':14s} {'shape':22s} {'full columns':>12s} {'conv_columns':>12s} "
          f"{'PyTorch':>8s}")
    for name, c_in, c_out, size, stride in LAYERS:
        shape = f"{c_in}->{c_out}, {size}x{size}, S{stride}"
        torch_ms = f"{theirs[name] * 1e3:8.2f}" if name in theirs else f"{'-':>8s}"
        print(f"{name:14s} {shape:22s} {ours[name]['full columns'] * 1e3:12.2f} "
              f"{ours[name]['conv_columns'] * 1e3:12.2f} {torch_ms}")


if __name__ == "__main__":
    main()

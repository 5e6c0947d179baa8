"""Time every CUDA kernel against its CuPy-array reference on one GPU; prints JSON.

    PYTHONPATH=$PWD python benchmarks/gpu_kernels.py [--iters 50] [--out kernels.json]

Shapes are those of nanoGPT's shakespeare-char step (B=64, T=256, n_embd=384, n_head=6,
vocab 65), plus GPT-2's vocabulary (50257) for the loss, a 10.65M-parameter flat buffer
for AdamW, and the conv VAE's first layer for im2col/col2im. Each entry: the kernel's and
the reference's median milliseconds (CUDA events around each call, after warm-up), their
ratio, and the largest difference between the two outputs. Exits with a message where no
GPU is present; nothing here has run on a GPU yet (docs/gpu_kernels.md).
"""

import argparse
import json
import platform
import sys

import numpy as np

from tinygen import backend
from tinygen.ops import kernel_calls as kc
from tinygen.optim import adam_kernel

B, T, C, NH, V_CHAR, V_GPT2 = 64, 256, 384, 6, 65, 50257
N_GPT2, N_PARAMS = 8 * 1024, 10_650_000   # GPT-2 loss rows; GPT params (shakespeare-char)


def median_ms(fn, iters, cp):
    for _ in range(3):
        fn()
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    times = []
    for _ in range(iters):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop))
    return float(np.median(times))


def max_diff(a, b, cp):
    a, b = (a if isinstance(a, tuple) else (a,)), (b if isinstance(b, tuple) else (b,))
    return max(float(cp.abs(x.astype(cp.float64) - y.astype(cp.float64)).max())
               for x, y in zip(a, b) if x is not None and x.size)


def cases(cp):
    """(name, kernel call, reference call) at the benchmark shapes, inputs built once."""
    rng = np.random.default_rng(0)

    def randn(*shape, scale=1.0):         # drawn on the host, uploaded once
        return cp.asarray(rng.standard_normal(shape, dtype=np.float32) * scale)

    x, g, w, b = randn(B, T, C), randn(B, T, C), randn(C), randn(C)
    _, mean, rstd = kc.layer_norm_forward_cuda(x, w, b)
    h, gh, bh = randn(B, T, 4 * C), randn(B, T, 4 * C), randn(4 * C)
    scores, gatt = randn(B, NH, T, T, scale=3), randn(B, NH, T, T)
    att = kc.attention_softmax_forward_cuda(scores, 0.125, True)
    logits_char, logits_gpt2 = randn(B * T, V_CHAR, scale=3), randn(N_GPT2, V_GPT2)
    t_char = cp.asarray(np.random.default_rng(0).integers(0, V_CHAR, B * T))
    t_gpt2 = cp.asarray(np.random.default_rng(0).integers(0, V_GPT2, N_GPT2))
    n_params = N_PARAMS
    flat = [randn(n_params), randn(n_params), cp.zeros(n_params, cp.float32),
            cp.zeros(n_params, cp.float32)]
    ref_flat = [a.copy() for a in flat]
    decay = cp.asarray(np.random.default_rng(0).random(n_params) < 0.9)
    image = randn(32, 3, 64, 64).transpose(1, 2, 3, 0)          # NCHW batch as [C, H, W, N]
    conv = ((4, 4), (2, 2), (1, 1), (32, 32))
    cols = kc.im2col_cuda(image, *conv)
    adam = {"step": 10, "lr": 1e-3, "betas": (0.9, 0.95), "weight_decay": 0.1,
            "decay": decay}
    return [
        ("layer_norm_forward [16384, 384]",
         lambda: kc.layer_norm_forward_cuda(x, w, b),
         lambda: kc.layer_norm_forward_reference(x, w, b)),
        ("layer_norm_backward [16384, 384]",
         lambda: kc.layer_norm_backward_cuda(g, x, mean, rstd, w, True),
         lambda: kc.layer_norm_backward_reference(g, x, mean, rstd, w, True)),
        ("gelu_forward [16384, 1536]", lambda: kc.gelu_forward_cuda(h),
         lambda: kc.gelu_forward_reference(h)),
        ("gelu_backward [16384, 1536]", lambda: kc.gelu_backward_cuda(h, gh),
         lambda: kc.gelu_backward_reference(h, gh)),
        ("bias_gelu_forward [16384, 1536]", lambda: kc.bias_gelu_forward_cuda(h, bh),
         lambda: kc.bias_gelu_forward_reference(h, bh)),
        ("bias_gelu_backward [16384, 1536]", lambda: kc.bias_gelu_backward_cuda(h, bh, gh),
         lambda: kc.bias_gelu_backward_reference(h, bh, gh)),
        ("attention_softmax_forward [64, 6, 256, 256] causal",
         lambda: kc.attention_softmax_forward_cuda(scores, 0.125, True),
         lambda: kc.attention_softmax_forward_reference(scores, 0.125, True)),
        ("attention_softmax_backward [64, 6, 256, 256]",
         lambda: kc.attention_softmax_backward_cuda(att, gatt, 0.125),
         lambda: kc.attention_softmax_backward_reference(att, gatt, 0.125)),
        ("cross_entropy [16384, 65]",
         lambda: kc.cross_entropy_forward_backward_cuda(logits_char, t_char),
         lambda: kc.cross_entropy_forward_backward_reference(logits_char, t_char)),
        ("cross_entropy [8192, 50257]",
         lambda: kc.cross_entropy_forward_backward_cuda(logits_gpt2, t_gpt2),
         lambda: kc.cross_entropy_forward_backward_reference(logits_gpt2, t_gpt2)),
        ("adamw_step flat [10.65M]",
         lambda: (adam_kernel.adam_step_cuda(*flat, **adam),),
         lambda: (adam_kernel.adam_step_reference(*ref_flat, **adam),)),
        ("dropout_mask [64, 256, 384] p=0.2",
         lambda: kc.dropout_mask_cuda((B, T, C), 0.2, 1, 0, cp),
         lambda: kc.dropout_mask_reference((B, T, C), 0.2, 1, 0, cp)),
        ("dropout_apply [64, 256, 384] p=0.2",
         lambda: kc.dropout_apply_cuda(x, 0.2, 1, 0),
         lambda: kc.dropout_apply_reference(x, 0.2, 1, 0)),
        ("im2col N=32 C=3 64x64 k4 s2 p1",
         lambda: kc.im2col_cuda(image, *conv),
         lambda: kc.im2col_reference(image, *conv)),
        ("col2im N=32 C=3 64x64 k4 s2 p1",
         lambda: kc.col2im_cuda(cols, image.shape, *conv[:3]),
         lambda: kc.col2im_reference(cols, image.shape, *conv[:3])),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=50, help="timed calls per measurement")
    parser.add_argument("--out", default=None, help="also write the JSON to this file")
    args = parser.parse_args()
    if not backend.cuda_available():
        sys.exit("benchmarks/gpu_kernels.py: needs a GPU with CuPy (pip install tinygen[gpu])")
    cp = backend.cp
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    results = []
    for name, kernel, reference in cases(cp):
        k_ms = median_ms(kernel, args.iters, cp)
        r_ms = median_ms(reference, args.iters, cp)
        diff = max_diff(kernel(), reference(), cp)     # AdamW: both took the same steps
        results.append({"kernel": name, "kernel_ms": round(k_ms, 4),
                        "reference_ms": round(r_ms, 4), "speedup": round(r_ms / k_ms, 2),
                        "max_abs_diff": diff})
    report = {"gpu": props["name"].decode(), "cupy": cp.__version__,
              "python": platform.python_version(), "iters": args.iters, "results": results}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()

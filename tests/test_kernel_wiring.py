"""The ops launch their CUDA kernels when the kernels are switched on (ops/kernels.py).

Checked on the CPU, as tests/test_cuda_kernel_launches.py checks the launch wrappers:
`kernels.use` is made to accept NumPy float32 arrays (the switch on, as for CuPy float32
ones), and every launch is checked against its kernel's .cu signature, then run as that
kernel's NumPy model. So each op takes its kernel path here: which kernels it launches,
what it saves for backward, and how it routes the gradients. Its results must equal the
same op with the kernels off. What the CUDA code computes is checked only on a GPU
(tests/test_cuda_kernels.py).
"""

import numpy as np
import pytest
from conftest import EMULATED_CUDA
from test_cuda_kernel_launches import checked_launch, launched

import tinygen as tg
import tinygen.nn.functional as F
from tinygen import nn, optim
from tinygen.ops import kernel_calls, kernels
from tinygen.optim import adam_kernel


@pytest.fixture
def switch(monkeypatch):
    """switch(True): every kernel "on" for NumPy float32 arrays; switch(False): off."""
    def use_on_cpu(name, *arrays):
        return all(a is None or (isinstance(a, np.ndarray) and a.dtype == np.float32)
                   for a in arrays)

    monkeypatch.setattr(kernel_calls, "launch", checked_launch)
    monkeypatch.setattr(adam_kernel, "launch", checked_launch)

    def set_to(on):
        monkeypatch.setattr(kernels, "use", use_on_cpu if on else lambda *_: False)
        launched.clear()
    return set_to


def both_ways(switch, run):
    """run() with the kernels off, then on: (off results, on results, kernels launched)."""
    switch(False)
    off = run()
    assert not launched
    switch(True)
    on = run()
    return off, on, sorted(set(launched))


def leaf(*shape, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    return tg.tensor((rng.standard_normal(shape) * scale).astype(np.float32),
                     requires_grad=True)


def forward_backward(fn, *inputs):
    """fn(*inputs) -> (output, every input's gradient) for the loss Σ out · a fixed weight."""
    for t in inputs:
        t.grad = None
    out = fn(*inputs)
    w = np.random.default_rng(9).standard_normal(out.shape).astype(np.float32)
    (out * tg.tensor(w, device=out.device)).sum().backward()
    return [out.numpy()] + [t.grad.numpy() for t in inputs]


def assert_same(off, on, tol=2e-5):
    for a, b in zip(off, on, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol)


@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm(switch, affine):
    ln = nn.LayerNorm(40, elementwise_affine=affine)
    if affine:
        ln.weight.data[:] = np.linspace(0.5, 1.5, 40, dtype=np.float32)
        ln.bias.data[:] = np.linspace(-1, 1, 40, dtype=np.float32)
    x = leaf(3, 5, 40, scale=2)
    params = list(ln.parameters())
    off, on, names = both_ways(switch, lambda: forward_backward(lambda x, *_: ln(x), x, *params))
    assert_same(off, on, 1e-4)
    assert names == sorted(["layer_norm_forward", "layer_norm_backward_input"]
                           + (["layer_norm_backward_params"] if affine else []))


def test_gelu(switch):
    x = leaf(6, 33, scale=3)
    off, on, names = both_ways(switch, lambda: forward_backward(
        lambda t: F.gelu(t, approximate="tanh"), x))
    assert_same(off, on)
    assert names == ["gelu_backward", "gelu_forward"]


@pytest.mark.parametrize("Tq,Tk,dropout", [(6, 6, False), (70, 70, False), (3, 8, False),
                                           (6, 6, True)])
def test_causal_attention(switch, Tq, Tk, dropout):
    """One block of queries and the CPU's several blocks (T = 70), a KV cache (Tq < Tk)
    and a dropout mask: the kernel's causal mask is the op's."""
    q, k, v = leaf(2, 3, Tq, 8, seed=1), leaf(2, 3, Tk, 8, seed=2), leaf(2, 3, Tk, 8, seed=3)

    def attend(q, k, v):
        if dropout:
            tg.manual_seed(5)
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=0.3)
        if Tq != Tk:   # the last Tq positions of Tk, as a KV cache has them
            from tinygen.ops import ScaledDotProductAttention
            return ScaledDotProductAttention.apply(q, k, v, is_causal=True)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    off, on, names = both_ways(switch, lambda: forward_backward(attend, q, k, v))
    assert_same(off, on, 1e-4)
    assert names == ["attention_softmax_backward", "attention_softmax_forward"]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy(switch, reduction):
    logits = leaf(10, 17, scale=3)
    target = np.random.default_rng(4).integers(0, 17, 10)
    target[[2, 7]] = -100
    off, on, names = both_ways(switch, lambda: forward_backward(
        lambda t: F.cross_entropy(t, tg.tensor(target), reduction=reduction), logits))
    assert_same(off, on)
    assert names == ["cross_entropy_forward_backward"]
    # weights and label smoothing are not in the kernel: the array code runs
    switch(True)
    forward_backward(lambda t: F.cross_entropy(t, tg.tensor(target), label_smoothing=0.1),
                     logits)
    assert not launched


@pytest.mark.parametrize("opt", [optim.AdamW, optim.Adam])
def test_adam_flat_buffer(switch, opt):
    def train():
        tg.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 9), nn.GELU(), nn.Linear(9, 2))
        groups = [{"params": [model[0].weight, model[2].weight], "weight_decay": 0.1},
                  {"params": [model[0].bias, model[2].bias], "weight_decay": 0.0}]
        o = opt(groups, lr=0.05)
        x = tg.tensor(np.random.default_rng(6).standard_normal((7, 5)).astype(np.float32))
        for _ in range(3):
            o.zero_grad()
            (model(x) ** 2).mean().backward()
            o.step()
        return [p.numpy().copy() for p in model.parameters()]

    off, on, names = both_ways(switch, train)
    assert_same(off, on, 1e-5)
    assert "adam_step" in names


def test_im2col_col2im(switch):
    """A 3-channel 3x3 stride-2 conv: im2col for the forward and the weight gradient,
    col2im for the input gradient (dilated or one-sided padding keep the array code)."""
    x, w = leaf(2, 3, 9, 8, seed=7), leaf(4, 3, 3, 3, seed=8, scale=0.3)
    off, on, names = both_ways(switch, lambda: forward_backward(
        lambda x, w: F.conv2d(x, w, stride=2, padding=1), x, w))
    assert_same(off, on, 1e-4)
    assert names == ["col2im", "im2col"]
    switch(True)
    forward_backward(lambda x, w: F.conv2d(x, w, padding=1, dilation=2), x, w)
    assert not launched


def test_float64_and_the_switch_off_keep_the_array_code(switch):
    x = tg.tensor(np.ones((4, 40)), requires_grad=True)               # float64
    switch(True)
    forward_backward(lambda t: F.layer_norm(t, (40,)), x)
    forward_backward(lambda t: F.gelu(t, approximate="tanh"), x)
    assert not launched


def launch_kernels_on_the_emulator(monkeypatch):
    """Each launch checked and run as its kernel's NumPy model on the emulated arrays' memory."""
    from cupy_emulator_array import ndarray as emulated

    def launch_on_emulated(family, kernel, grid, block, args):
        checked_launch(family, kernel, grid, block,
                       tuple(a._a if isinstance(a, emulated) else a for a in args))

    monkeypatch.setattr(kernel_calls, "launch", launch_on_emulated)
    monkeypatch.setattr(adam_kernel, "launch", launch_on_emulated)
    launched.clear()


emulator_only = pytest.mark.skipif(not EMULATED_CUDA,
                                   reason="runs the kernels' NumPy models on the emulator")


@emulator_only
def test_conv_layer_on_the_emulated_gpu_launches_im2col_and_col2im(monkeypatch):
    launch_kernels_on_the_emulator(monkeypatch)

    def run():
        tg.manual_seed(0)
        conv = nn.Conv2d(3, 5, 3, stride=2, padding=1).to("cuda")
        x = leaf(2, 3, 9, 8, seed=7).to("cuda").detach()
        x.requires_grad = True
        return forward_backward(conv, x) + [p.grad.numpy() for p in conv.parameters()]

    off = run()
    monkeypatch.setattr(kernels, "_enabled", set(kernels.KERNELS))
    on = run()
    assert_same(off, on, 1e-4)
    assert {"im2col", "col2im"} <= set(launched)


@emulator_only
def test_gpt_steps_on_the_emulated_gpu_with_every_kernel_on(monkeypatch):
    """The real switch (kernels.enable()) on the CuPy emulator's float32 arrays: a GPT's
    training steps (layer norm, GELU, causal attention, cross-entropy, AdamW's flat buffer)
    launch their kernels, run here as NumPy models on the emulated arrays' memory, and
    reach the losses and weights of the same steps with the kernels off."""
    from tinygen.models.gpt import GPT, GPTConfig

    launch_kernels_on_the_emulator(monkeypatch)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 17, (3, 8)), rng.integers(0, 17, (3, 8))

    def train():
        tg.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=17, block_size=8, n_layer=2, n_head=2, n_embd=16,
                              dropout=0.0, bias=True)).to("cuda")
        opt = model.configure_optimizers(0.1, 1e-2, (0.9, 0.99))
        losses = []
        for _ in range(3):
            _, loss = model(tg.tensor(x, device="cuda"), tg.tensor(y, device="cuda"))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return [np.array(losses)] + [p.numpy() for p in model.parameters()]

    off = train()
    launched.clear()
    monkeypatch.setattr(kernels, "_enabled", set(kernels.KERNELS))
    on = train()
    assert {"layer_norm_forward", "layer_norm_backward_input", "gelu_forward",
            "gelu_backward", "attention_softmax_forward", "attention_softmax_backward",
            "cross_entropy_forward_backward", "adam_step"} <= set(launched)
    assert_same(off[:1], on[:1], 1e-5)
    assert_same(off[1:], on[1:], 1e-4)

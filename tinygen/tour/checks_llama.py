"""The check of tour exercise 16 (the LLaMA-style GPT)."""

import numpy as np

import tinygen as tg
from tinygen.gradcheck import gradcheck
from tinygen.models.gpt import GPTConfig
from tinygen.tour.checks import _close, _f64


def check_16(m):
    # RMSNorm: the formula, and a gradient that gradcheck accepts
    norm = m.RMSNorm(6)
    norm.weight.data[:] = np.linspace(0.5, 1.5, 6)
    x = _f64(2, 3, 6)
    want = x.data / np.sqrt((x.data ** 2).mean(-1, keepdims=True) + 1e-5) * norm.weight.data
    _close(norm(x).data, want, "RMSNorm", rtol=1e-4)
    gradcheck(lambda t: norm(t), [x], rtol=1e-2, atol=1e-4)
    # SwiGLU: c_proj(silu(c_gate(x)) * c_fc(x))
    config = GPTConfig(block_size=16, vocab_size=11, n_layer=2, n_head=2, n_embd=16)
    mlp = m.SwiGLU(config)
    h = tg.tensor(np.random.default_rng(1).standard_normal((2, 3, 16)).astype(np.float32))
    g = h.data @ mlp.c_gate.weight.data.T
    want = (g / (1 + np.exp(-g)) * (h.data @ mlp.c_fc.weight.data.T)) @ mlp.c_proj.weight.data.T
    _close(mlp(h).data, want, "SwiGLU", atol=1e-4, rtol=1e-3)
    # RoPE: a rotation (norms kept), q·k depends on the distance only, and start works
    q = _f64(1, 1, 6, 8, requires_grad=False)
    rq = m.rope(q)
    assert rq.shape == q.shape, f"rope: shape {rq.shape}, expected {q.shape}"
    _close(np.linalg.norm(rq.data, axis=-1), np.linalg.norm(q.data, axis=-1),
           "rope: the norm of each vector (a rotation keeps it)")
    assert not np.allclose(rq.data[..., 1:, :], q.data[..., 1:, :]), "rope: nothing rotated"
    _close(rq.data[..., 0, :], q.data[..., 0, :], "rope: position 0 is not rotated")
    _close(m.rope(q[:, :, 2:], start=2).data, rq.data[:, :, 2:], "rope with start=2")
    one = _f64(1, 1, 1, 8, seed=3, requires_grad=False)
    two = _f64(1, 1, 1, 8, seed=4, requires_grad=False)
    dots = [float((m.rope(one, start=a).data * m.rope(two, start=a + 3).data).sum())
            for a in (0, 5, 11)]
    _close(dots, [dots[0]] * 3, "rope: q·k at the same distance, at different positions")
    # the model: trains, has no learned positions, and the KV cache agrees with no cache
    tg.manual_seed(0)
    model = m.LlamaGPT(config)
    assert "wpe" not in model.transformer, "LlamaGPT: RoPE replaces the learned positions"
    idx = np.random.default_rng(2).integers(0, 11, (2, 8))
    _, loss = model(idx, idx)
    assert np.isfinite(loss.item()), "LlamaGPT: the loss is not finite"
    loss.backward()
    a = model.generate(idx[:, :3], 6, temperature=0, use_cache=True).numpy()
    b = model.generate(idx[:, :3], 6, temperature=0, use_cache=False).numpy()
    assert (a == b).all(), "LlamaGPT: generate with the KV cache differs from without it"

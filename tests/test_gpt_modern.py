"""The modern decoder block as GPTConfig switches: RMSNorm, a SwiGLU MLP, rotary position
embeddings (RoPE); each one line of config, checked against its definition."""

import numpy as np
import pytest

import tinygen as tg
from tinygen import nn, optim
from tinygen.models.gpt import GPT, GPTConfig, SwiGLUMLP
from tinygen.models.rope import apply_rope

SWITCHES = {"rmsnorm": {"norm": "rmsnorm"}, "swiglu": {"mlp": "swiglu"},
            "rope": {"pos_emb": "rope"},
            "all": {"norm": "rmsnorm", "mlp": "swiglu", "pos_emb": "rope"}}


def tiny(**kw):
    return GPTConfig(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=16, **kw)


@pytest.mark.parametrize("name", SWITCHES)
def test_switch_builds_what_it_says_and_learns(name):
    tg.manual_seed(0)
    model = GPT(tiny(**SWITCHES[name]))
    kw = SWITCHES[name]
    block = model.transformer.h[0]
    assert isinstance(block.ln_1, nn.RMSNorm) == (kw.get("norm") == "rmsnorm")
    assert isinstance(block.mlp, SwiGLUMLP) == (kw.get("mlp") == "swiglu")
    assert ("transformer.wpe.weight" in model.state_dict()) == (kw.get("pos_emb") != "rope")
    idx = np.random.default_rng(0).integers(0, 11, (4, 8))
    opt = optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        _, loss = model(idx[:, :-1], idx[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("name", ["rope", "all"])
@pytest.mark.parametrize("new_tokens", [5, 12])  # 12 runs past block_size 8: sliding window
def test_kv_cache_generation_equals_recomputation(name, new_tokens):
    tg.manual_seed(0)
    model = GPT(tiny(**SWITCHES[name]))
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    runs = []
    for use_cache in (True, False):
        tg.manual_seed(123)
        runs.append(tg.tensor(model.generate(prompt, new_tokens, top_k=5,
                                             use_cache=use_cache)).numpy())
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.parametrize("name", ["rope", "all"])
def test_cached_logits_equal_full_logits(name):
    tg.manual_seed(0)
    model = GPT(tiny(**SWITCHES[name])).eval()
    idx = np.random.default_rng(1).integers(0, 11, (2, 8))
    with tg.no_grad():
        full = model(idx, idx)[0].numpy()                                  # [B, T, V]
        caches = [{} for _ in model.transformer.h]
        step = [model(idx[:, t:t + 1], caches=caches)[0].numpy()[:, -1] for t in range(8)]
    np.testing.assert_allclose(np.stack(step, 1), full, rtol=1e-4, atol=1e-5)


def test_rope_scores_depend_only_on_relative_position():
    rng = np.random.default_rng(0)
    q, k = tg.tensor(rng.standard_normal((1, 8))), tg.tensor(rng.standard_normal((1, 8)))
    score = [(apply_rope(q, m) * apply_rope(k, m + 3)).sum().item() for m in (0, 5, 11)]
    np.testing.assert_allclose(score, score[0], rtol=1e-12)


def test_rope_matches_transformers_llama():
    torch = pytest.importorskip("torch")
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((2, 3, 5, 8)), rng.standard_normal((2, 3, 5, 8))
    pos = torch.arange(4, 9, dtype=torch.float64)
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, 8, 2, dtype=torch.float64) / 8))
    emb = torch.cat([pos[:, None] * inv_freq] * 2, -1)
    tq, tk = llama.apply_rotary_pos_emb(torch.tensor(q), torch.tensor(k), emb.cos()[None],
                                        emb.sin()[None])
    np.testing.assert_allclose(apply_rope(tg.tensor(q), 4).numpy(), tq.numpy(), rtol=1e-12)
    np.testing.assert_allclose(apply_rope(tg.tensor(k), 4).numpy(), tk.numpy(), rtol=1e-12)


def test_swiglu_is_its_formula_and_sized_like_gelu():
    tg.manual_seed(0)
    cfg = tiny(mlp="swiglu")
    mlp = SwiGLUMLP(cfg)
    assert mlp.hidden == 48          # 8/3 · 16 rounded up to a multiple of 8
    x = tg.randn(2, 3, 16)
    W, b = mlp.c_fc.weight.numpy(), mlp.c_fc.bias.numpy()
    h = x.numpy() @ W.T + b
    gate, up = h[..., :48], h[..., 48:]
    want = (gate / (1 + np.exp(-gate)) * up) @ mlp.c_proj.weight.numpy().T + \
        mlp.c_proj.bias.numpy()
    np.testing.assert_allclose(mlp(x).numpy(), want, rtol=1e-5, atol=1e-6)


def test_config_errors():
    with pytest.raises(ValueError, match="GPTConfig: norm must be one of"):
        tiny(norm="batchnorm")
    with pytest.raises(ValueError, match="even head size"):
        GPTConfig(n_embd=6, n_head=2, pos_emb="rope")

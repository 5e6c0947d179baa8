"""GPT: nanoGPT-compatible names, learning, KV-cache sampling, checkpoints and resume."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tinygen as tg
from tinygen.checkpoint import load_checkpoint, save_checkpoint
from tinygen.models.gpt import GPT, GPTConfig, sample
from tinygen.optim import clip_grad_norm_

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny(**kw):
    return GPTConfig(**{"n_layer": 2, "n_head": 2, "n_embd": 16, "block_size": 8,
                        "vocab_size": 11, **kw})


def test_state_dict_has_nanogpt_names_and_shapes():
    tg.manual_seed(0)
    sd = GPT(tiny(n_layer=1)).state_dict()
    C = 16
    expected = {
        "transformer.wte.weight": (11, C), "transformer.wpe.weight": (8, C),
        "transformer.h.0.ln_1.weight": (C,), "transformer.h.0.ln_1.bias": (C,),
        "transformer.h.0.attn.c_attn.weight": (3 * C, C),
        "transformer.h.0.attn.c_attn.bias": (3 * C,),
        "transformer.h.0.attn.c_proj.weight": (C, C), "transformer.h.0.attn.c_proj.bias": (C,),
        "transformer.h.0.ln_2.weight": (C,), "transformer.h.0.ln_2.bias": (C,),
        "transformer.h.0.mlp.c_fc.weight": (4 * C, C), "transformer.h.0.mlp.c_fc.bias": (4 * C,),
        "transformer.h.0.mlp.c_proj.weight": (C, 4 * C),
        "transformer.h.0.mlp.c_proj.bias": (C,),
        "transformer.ln_f.weight": (C,), "transformer.ln_f.bias": (C,),
        "lm_head.weight": (11, C),
    }
    assert {k: v.shape for k, v in sd.items()} == expected
    assert list(sd) == list(expected)  # nanoGPT's order too


def test_weights_are_tied_and_gpt2_initialised():
    tg.manual_seed(0)
    model = GPT(tiny(n_layer=4, n_embd=64, n_head=4, vocab_size=500))
    assert model.transformer.wte.weight is model.lm_head.weight
    names = [n for n, _ in model.named_parameters()]
    assert "lm_head.weight" not in names  # listed once, under its first name
    std = model.transformer.h[0].mlp.c_fc.weight.numpy().std()
    assert abs(std - 0.02) < 0.002
    proj = model.transformer.h[0].mlp.c_proj.weight.numpy().std()
    assert abs(proj - 0.02 / np.sqrt(8)) < 0.001
    assert not model.transformer.h[0].attn.c_attn.bias.numpy().any()


def test_bias_false_drops_biases():
    sd = GPT(tiny(bias=False)).state_dict()
    assert not any(k.endswith(".bias") for k in sd)


def test_forward_shapes_and_initial_loss():
    tg.manual_seed(0)
    model = GPT(tiny())
    idx, targets = np.random.default_rng(0).integers(0, 11, (2, 3, 8))
    logits, loss = model(idx, targets)
    assert logits.shape == (3, 8, 11) and logits.dtype == np.float32
    assert abs(loss.item() - np.log(11)) < 0.1  # small init: close to uniform
    logits, loss = model(idx)
    assert logits.shape == (3, 1, 11) and loss is None


def test_loads_nanogpt_checkpoint_with_attention_mask_buffers():
    model = GPT(tiny(n_layer=1))
    sd = {k: v.numpy() * 0 + 1 for k, v in model.state_dict().items()}
    sd["transformer.h.0.attn.bias"] = np.tril(np.ones((1, 1, 8, 8), np.float32))
    model.load_state_dict(sd)
    assert model.transformer.h[0].attn.c_attn.weight.numpy().min() == 1


def test_block_size_exceeded_is_a_clear_error():
    with pytest.raises(ValueError, match="block_size"):
        GPT(tiny())(np.zeros((1, 9), np.int64))


def test_overfits_one_batch(device):
    tg.manual_seed(0)
    model = GPT(tiny()).to(device)
    opt = model.configure_optimizers(0.0, 3e-3, (0.9, 0.99))
    rng = np.random.default_rng(0)
    x = tg.tensor(rng.integers(0, 11, (4, 8)), device=device)
    y = tg.tensor(rng.integers(0, 11, (4, 8)), device=device)
    first = None
    for _ in range(150):
        _, loss = model(x, y)
        first = first or loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first > 2.0 and loss.item() < 0.1


def test_configure_optimizers_exempts_vectors_from_decay():
    model = GPT(tiny())
    decay, no_decay = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95)).param_groups
    assert decay["weight_decay"] == 0.1 and all(p.ndim == 2 for p in decay["params"])
    assert no_decay["weight_decay"] == 0.0 and all(p.ndim == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(model.parameters())


@pytest.mark.parametrize("new_tokens", [5, 12])  # 12 runs past block_size 8: sliding window
def test_kv_cache_gives_the_same_tokens_as_recomputation(device, new_tokens):
    tg.manual_seed(0)
    model = GPT(tiny()).to(device)
    prompt = tg.tensor(np.array([[1, 2, 3], [4, 5, 6]]), device=device)
    runs = []
    for use_cache in (True, False):
        tg.manual_seed(123)
        runs.append(tg.tensor(model.generate(prompt, new_tokens, temperature=1.0, top_k=5,
                                             use_cache=use_cache)).numpy())
    assert runs[0].shape == (2, 3 + new_tokens)
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0][:, :3], [[1, 2, 3], [4, 5, 6]])


def test_cached_logits_equal_full_logits():
    tg.manual_seed(0)
    model = GPT(tiny()).eval()
    idx = np.random.default_rng(1).integers(0, 11, (2, 8))
    with tg.no_grad():
        full = [model(idx[:, :t + 1])[0].numpy()[:, -1] for t in range(8)]
        caches = [{} for _ in model.transformer.h]
        step = [model(idx[:, t:t + 1], caches=caches)[0].numpy()[:, -1] for t in range(8)]
    np.testing.assert_allclose(np.array(step), np.array(full), rtol=1e-4, atol=1e-5)


def test_kv_cache_buffers_grow_and_survive_a_step_with_gradients():
    """The no_grad cache writes into buffers of twice the length needed (at least 64);
    a step with gradients on concatenates instead, and later no_grad steps go on from it."""
    tg.manual_seed(0)
    model = GPT(tiny(block_size=200)).eval()
    idx = np.random.default_rng(2).integers(0, 11, (2, 150))
    with tg.no_grad():
        full = model(idx)[0].numpy()[:, -1]
    caches = [{} for _ in model.transformer.h]
    with tg.no_grad():
        model(idx[:, :60], caches=caches)              # buffers of 2 · 60 = 120
        for t in range(60, 140):                        # past 120: they grow to 2 · 121
            model(idx[:, t:t + 1], caches=caches)
    assert caches[0]["k_buffer"].shape[2] == 242 and caches[0]["k"].shape[2] == 140
    logits, _ = model(idx[:, 140:145], caches=caches)  # with gradients: concatenation
    assert logits.requires_grad and "k_buffer" not in caches[0]
    with tg.no_grad():
        for t in range(145, 150):
            logits, _ = model(idx[:, t:t + 1], caches=caches)
    np.testing.assert_allclose(logits.numpy()[:, -1], full, rtol=1e-4, atol=1e-5)


def test_sample_respects_top_k_top_p_and_temperature():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]] * 2000))
    tg.manual_seed(0)
    assert set(sample(logits, top_k=2).tolist()) == {0, 1}
    assert set(sample(logits, top_p=0.7).tolist()) == {0, 1}  # 0.5 < 0.7 <= 0.8
    assert set(sample(logits, top_p=0.5).tolist()) == {0}
    assert set(sample(logits, temperature=0).tolist()) == {0}
    counts = np.bincount(sample(logits).numpy(), minlength=4) / 2000
    np.testing.assert_allclose(counts, [0.5, 0.3, 0.15, 0.05], atol=0.04)


def _train(model, opt, steps, rng, losses):
    for _ in range(steps):
        x = rng.integers(0, 11, (4, 8))
        _, loss = model(x, (x + 1) % 11)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())


def test_resume_continues_exactly(tmp_path):
    """Losses after save + load equal those of a run that never stopped."""
    def fresh():
        tg.manual_seed(0)
        model = GPT(tiny(dropout=0.1))  # dropout: the global RNG state must be restored too
        return model, model.configure_optimizers(0.1, 1e-2, (0.9, 0.99))

    model, opt = fresh()
    rng, straight = np.random.default_rng(7), []
    _train(model, opt, 10, rng, straight)

    model, opt = fresh()
    rng, resumed = np.random.default_rng(7), []
    _train(model, opt, 5, rng, resumed)
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model, opt, step=5, rngs={"batches": rng}, config={"lr": 1e-2})
    tg.manual_seed(999)  # scramble everything the checkpoint must restore
    model, opt = fresh()
    rng = np.random.default_rng(0)
    ckpt = load_checkpoint(path, model, opt, rngs={"batches": rng})
    assert ckpt["step"] == 5 and ckpt["config"] == {"lr": 1e-2}
    _train(model, opt, 5, rng, resumed)
    assert resumed == straight


def _demo(tmp_path, *extra):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "demos", "gpt.py"), "--smoke",
                          "--out_dir", str(tmp_path), *extra],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_demo_smoke_trains_resumes_and_samples(tmp_path):
    stdout = _demo(tmp_path)
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert {"val_loss", "tokens_per_s", "seconds"} <= set(summary)
    assert summary == json.loads((tmp_path / "summary.json").read_text())
    assert (tmp_path / "ckpt.safetensors").exists()
    stdout = _demo(tmp_path, "--resume", "--max_iters", "25")
    assert "resumed from" in stdout and "at step 20" in stdout
    stdout = _demo(tmp_path, "--sample", "--prompt", "def ")
    assert "tokens/s sampled" in stdout


def test_same_loss_and_gradients_as_pytorch():
    """GPT against its PyTorch twin (benchmarks/torch_gpt.py, nanoGPT's structure): the same
    weights give the same loss and the same gradient for every parameter, ignored targets
    (-1) and the tied embedding included."""
    from conftest import assert_same_loss_and_grads, torch_from, torch_twin

    tg.manual_seed(0)
    model = GPT(tiny())
    twin = torch_twin("torch_gpt", "TorchGPT", model, vocab_size=11, n_layer=2, n_head=2,
                      n_embd=16, block_size=8)
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 11, size=(3, 8))
    targets = rng.integers(0, 11, size=(3, 8))
    targets[0, :3] = -1                                     # positions with no loss
    _, loss = model(tg.tensor(idx), tg.tensor(targets))
    loss.backward()
    _, loss_t = twin(torch_from(idx), torch_from(targets))
    loss_t.backward()
    assert_same_loss_and_grads(model, loss, twin, loss_t)


def test_generate_returns_a_tensor_on_the_model_device():
    tg.manual_seed(0)
    model = GPT(tiny())
    out = model.generate([[1, 2, 3]], 4, temperature=0)
    assert isinstance(out, tg.Tensor) and out.dtype == np.int64 and out.shape == (1, 7)
    assert out.device == model.lm_head.weight.device
    np.testing.assert_array_equal(out.numpy()[:, :3], [[1, 2, 3]])


def test_logits_processor_sees_ids_and_logits_and_steers_the_sampler():
    from tinygen.models.sampling import MinP, RepetitionPenalty

    tg.manual_seed(0)
    model = GPT(tiny())
    seen = []

    def ban_seven(ids, logits):  # Hugging Face's (input_ids, scores) -> scores
        seen.append((ids.shape, logits.shape))
        assert isinstance(ids, tg.Tensor) and isinstance(logits, tg.Tensor)
        data = logits.numpy().copy()
        data[:, 7] = -np.inf
        return tg.tensor(data)

    prompt = tg.tensor([[1, 2], [3, 4]])
    out = model.generate(prompt, 6, temperature=1.0, logits_processor=ban_seven)
    assert 7 not in out.numpy()[:, 2:]
    assert seen[0] == ((2, 2), (2, 11)) and seen[-1] == ((2, 7), (2, 11))
    # a list runs in order; the identity processor gives the same tokens as none
    tg.manual_seed(5)
    plain = model.generate(prompt, 6).numpy()
    tg.manual_seed(5)
    same = model.generate(prompt, 6, logits_processor=[RepetitionPenalty(1.0), MinP(0.0)])
    np.testing.assert_array_equal(same.numpy(), plain)


def test_repetition_penalty_moves_seen_logits_down_only():
    from tinygen.models.sampling import RepetitionPenalty

    logits = tg.tensor([[2.0, -1.0, 0.5, 3.0]])
    ids = tg.tensor([[0, 1, 1]])                            # token 1 twice: penalised once
    out = RepetitionPenalty(2.0)(ids, logits).numpy()
    np.testing.assert_allclose(out, [[1.0, -2.0, 0.5, 3.0]])
    with pytest.raises(ValueError, match="penalty=0"):
        RepetitionPenalty(0)


def test_greedy_with_repetition_penalty_avoids_repeating():
    from tinygen.models.sampling import RepetitionPenalty

    tg.manual_seed(0)
    model = GPT(tiny(block_size=16))
    out = model.generate([[1]], 10, temperature=0,
                         logits_processor=RepetitionPenalty(1e6)).numpy()[0]
    assert len(set(out.tolist())) == len(out)               # 11 ids, all different


def test_min_p_keeps_tokens_within_a_factor_of_the_top():
    from tinygen.models.sampling import MinP

    probs = np.array([[0.5, 0.3, 0.15, 0.05]] * 2000)
    out = MinP(0.25)(None, tg.tensor(np.log(probs))).numpy()
    assert np.isfinite(out[0]).tolist() == [True, True, True, False]  # 0.05 < 0.25 * 0.5
    tg.manual_seed(0)
    assert set(sample(out).tolist()) == {0, 1, 2}
    with pytest.raises(ValueError, match="min_p=1.5"):
        MinP(1.5)


@pytest.mark.parametrize("field, value, message", [
    ("n_layer", 0, "n_layer=0: must be > 0"),
    ("n_head", 5, "n_embd=16: must be divisible by n_head=5"),
    ("dropout", 1.0, "dropout=1.0: must be in [0, 1)"),
    ("block_size", -3, "block_size=-3: must be > 0"),
])
def test_config_rejects_bad_values_naming_the_field(field, value, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(")", r"\)")):
        tiny(**{field: value})


def test_gpt_and_clip_share_one_configure_optimizers():
    from tinygen.models.clip import CLIP, CLIPConfig
    from tinygen.optim.groups import decay_groups

    tg.manual_seed(0)
    for model in (GPT(tiny()), CLIP(CLIPConfig(text_layers=1, vision_layers=1))):
        decay, no_decay = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95)).param_groups
        groups = decay_groups(model.parameters(), 0.1)
        assert [id(p) for p in decay["params"]] == [id(p) for p in groups[0]["params"]]
        assert all(p.ndim >= 2 for p in decay["params"]) and decay["weight_decay"] == 0.1
        assert all(p.ndim < 2 for p in no_decay["params"]) and no_decay["weight_decay"] == 0.0
        assert len(decay["params"]) + len(no_decay["params"]) == len(model.parameters())

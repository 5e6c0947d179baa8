"""GPT-2 in the Hugging Face layout: transformers' GPT2LMHeadModel <-> tinygen's GPT, exactly.

The reference files are made here by transformers (random tiny models); nothing downloads.
"""

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

import tinygen as tg
from tinygen.models.gpt import GPT, GPTConfig
from tinygen.models.gpt2_hf import PretrainedError
from tinygen.serialization import MappedFile

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TINY = {"vocab_size": 97, "n_positions": 64, "n_embd": 32, "n_layer": 2, "n_head": 4,
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}


def hf_model(**overrides):
    torch.manual_seed(0)
    config = transformers.GPT2Config(**{**TINY, **overrides})
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # biases and LayerNorm gains away from 0 / 1, so a swap would show
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("hf") / "tiny-gpt2"
    model = hf_model()
    model.save_pretrained(path)
    return str(path), model


def ids(n=24, seed=0):
    return np.random.default_rng(seed).integers(0, TINY["vocab_size"], (2, n))


def rel_err(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_logits_equal(hf_folder):
    path, ref = hf_folder
    model = GPT.from_pretrained(path).eval()
    x = ids()
    logits, _ = model(tg.tensor(x), tg.tensor(x))
    with torch.no_grad():
        expected = ref(torch.tensor(x)).logits.numpy()
    assert rel_err(logits.numpy(), expected) <= 1e-5
    assert model.config.block_size == 64 and model.config.dropout == 0.0


def test_weights_are_one_block_and_conv1d_keeps_the_file_layout(hf_folder):
    model = GPT.from_pretrained(hf_folder[0])
    c_attn = model.transformer.h[0].attn.c_attn.weight.data          # [3C, C], viewing [C, 3C]
    assert c_attn.T.flags.c_contiguous and c_attn.base is not None
    blocks = {id(np.asarray(p.data).base.base) for p in model.parameters()}
    assert len(blocks) == 1                                           # one mapping for all


def test_mmap_loading_is_copy_on_write(tmp_path, hf_folder):
    """mmap=True: the weights view the file; writing one changes the model, not the file."""
    _, ref = hf_folder
    folder = tmp_path / "copy"
    ref.save_pretrained(folder)
    model = GPT.from_pretrained(folder, mmap=True).eval()
    x = ids()
    with torch.no_grad():
        expected = ref(torch.tensor(x)).logits.numpy()
    assert rel_err(model(tg.tensor(x), tg.tensor(x))[0].numpy(), expected) <= 1e-5
    weight = model.transformer.h[1].mlp.c_fc.weight
    before = weight.data.copy()
    weight.data[...] += 1.0                                           # in place: pages copied
    fresh = GPT.from_pretrained(folder)
    np.testing.assert_array_equal(fresh.transformer.h[1].mlp.c_fc.weight.data, before)
    opt = model.configure_optimizers(0.0, 1e-3, (0.9, 0.95))          # trains as usual
    _, loss = model(tg.tensor(x), tg.tensor(x))
    loss.backward()
    opt.step()


def test_greedy_generation_identical(hf_folder):
    path, ref = hf_folder
    model = GPT.from_pretrained(path)
    prompt = ids(5, seed=1)[:1]
    out = np.asarray(model.generate(tg.tensor(prompt), 50, temperature=0))
    expected = ref.generate(torch.tensor(prompt), max_new_tokens=50, do_sample=False,
                            min_new_tokens=50, pad_token_id=0).numpy()
    np.testing.assert_array_equal(out, expected)


def test_finetune_step_loss_and_gradients_equal(hf_folder):
    path, ref = hf_folder
    model = GPT.from_pretrained(path)
    x, y = ids(seed=2), ids(seed=3)
    _, loss = model(tg.tensor(x), tg.tensor(y))
    loss.backward()
    ref.zero_grad()
    # transformers shifts labels by one itself; feed logits to the loss as nanoGPT does
    ref_loss = torch.nn.functional.cross_entropy(
        ref(torch.tensor(x)).logits.reshape(-1, TINY["vocab_size"]), torch.tensor(y).reshape(-1))
    ref_loss.backward()
    assert abs(loss.item() - ref_loss.item()) <= 1e-6 * abs(ref_loss.item())
    grads = dict(model.named_parameters())
    for name, p in ref.named_parameters():
        ours = grads[name].grad.numpy()
        theirs = p.grad.numpy().T if name.endswith(("c_attn.weight", "c_proj.weight",
                                                    "c_fc.weight")) else p.grad.numpy()
        assert rel_err(ours, theirs) <= 1e-4, name


def test_save_pretrained_loads_in_transformers(tmp_path):
    tg.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=97, block_size=64, n_layer=2, n_head=4, n_embd=32))
    model.save_pretrained(tmp_path)
    ref = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    x = ids()
    with torch.no_grad():
        expected = ref(torch.tensor(x)).logits.numpy()
    logits, _ = model.eval()(tg.tensor(x), tg.tensor(x))
    assert rel_err(logits.numpy(), expected) <= 1e-5
    again = GPT.from_pretrained(tmp_path)  # and back, bit for bit
    for (name, a), (_, b) in zip(model.named_parameters(), again.named_parameters(),
                                 strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)


def test_bias_free_model_saves_zero_biases(tmp_path):
    model = GPT(GPTConfig(vocab_size=97, block_size=16, n_layer=1, n_head=2, n_embd=8,
                          bias=False))
    model.save_pretrained(tmp_path)
    again = GPT.from_pretrained(tmp_path).eval()
    x = ids(8)
    np.testing.assert_allclose(again(tg.tensor(x))[0].numpy(), model.eval()(tg.tensor(x))[0]
                               .numpy(), rtol=1e-6)


def test_unprefixed_keys_buffers_and_shards(tmp_path, hf_folder):
    """GPT2Model-style names (no "transformer."), causal-mask buffers and an untouched
    lm_head copy, split over two shards with an index: the same model comes out."""
    path, _ = hf_folder
    state = tg.load(os.path.join(path, "model.safetensors"))
    state = {k.removeprefix("transformer."): v.numpy() for k, v in state.items()}
    state["h.0.attn.bias"] = np.tril(np.ones((1, 1, 64, 64), np.float32))
    state["h.1.attn.masked_bias"] = np.array(-1e4, np.float32)
    state["lm_head.weight"] = state["wte.weight"]
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[:7],
              "model-00002-of-00002.safetensors": names[7:]}
    for file, keys in shards.items():
        tg.save({k: state[k] for k in keys}, tmp_path / file)
    weight_map = {k: f for f, keys in shards.items() for k in keys}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (tmp_path / "config.json").write_text(Path(path, "config.json").read_text())
    a, b = GPT.from_pretrained(path), GPT.from_pretrained(tmp_path)
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=name)


def test_model_id_resolves_through_the_hub_cache(tmp_path, hf_folder, monkeypatch):
    """A model id goes to huggingface_hub's cache; offline, nothing is downloaded."""
    pytest.importorskip("huggingface_hub")
    path, _ = hf_folder
    snapshot = tmp_path / "models--someone--tiny-gpt2" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (snapshot / name).write_bytes(Path(path, name).read_bytes())
    (tmp_path / "models--someone--tiny-gpt2" / "refs").mkdir()
    (tmp_path / "models--someone--tiny-gpt2" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    model = GPT.from_pretrained("someone/tiny-gpt2")
    assert model.config.n_layer == 2


# ---- hostile and broken folders: clear errors naming the file and the key --------------------

@pytest.fixture()
def broken(tmp_path, hf_folder):
    path, _ = hf_folder
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes(Path(path, name).read_bytes())
    return tmp_path


def rewrite(folder, change):
    state = {k: v.numpy() for k, v in tg.load(folder / "model.safetensors").items()}
    change(state)
    tg.save(state, folder / "model.safetensors")


@pytest.mark.parametrize("edit, words", [
    (lambda c: "{not json", ["config.json", "not valid UTF-8 JSON"]),
    (lambda c: json.dumps([1, 2]), ["config.json", "JSON object"]),
    (lambda c: json.dumps({**c, "n_embd": "32"}), ["config.json", "'n_embd'"]),
    (lambda c: json.dumps({k: v for k, v in c.items() if k != "n_head"}), ["'n_head'"]),
    (lambda c: json.dumps({**c, "n_head": 5}), ["multiple of n_head"]),
    (lambda c: json.dumps({**c, "activation_function": "relu"}), ["activation_function"]),
    (lambda c: json.dumps({**c, "tie_word_embeddings": False}), ["tie_word_embeddings"]),
    (lambda c: json.dumps({**c, "model_type": "llama"}), ["model_type"]),
])
def test_bad_config(broken, edit, words):
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(edit(config))
    with pytest.raises(PretrainedError) as e:
        GPT.from_pretrained(broken)
    assert all(w in str(e.value) for w in words), str(e.value)


@pytest.mark.parametrize("change, words", [
    (lambda s: s.pop("transformer.h.1.mlp.c_fc.bias"), ["missing", "h.1.mlp.c_fc.bias"]),
    (lambda s: s.update({"transformer.h.2.ln_1.weight": np.ones(32, np.float32)}),
     ["model.safetensors", "unexpected", "h.2.ln_1.weight"]),
    (lambda s: s.update({"transformer.h.0.attn.c_attn.weight": np.ones((96, 32), np.float32)}),
     ["model.safetensors", "h.0.attn.c_attn.weight", "[96, 32]", "[32, 96]"]),
    (lambda s: s.update({"transformer.wpe.weight": np.ones((64, 32), np.int32)}),
     ["wpe.weight", "int32"]),
    (lambda s: s.update({"lm_head.weight": s["transformer.wte.weight"] + 1}),
     ["lm_head.weight", "differs"]),
])
def test_bad_weights(broken, change, words):
    rewrite(broken, change)
    with pytest.raises(PretrainedError) as e:
        GPT.from_pretrained(broken)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_header_lying_about_offsets(broken):
    raw = (broken / "model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header["transformer.wpe.weight"]["data_offsets"][1] += 4
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    (broken / "model.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n:])
    with pytest.raises(PretrainedError, match=r"model\.safetensors.*transformer\.wpe\.weight"):
        GPT.from_pretrained(broken)


def test_missing_files_and_bad_index(broken):
    (broken / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"transformer.wte.weight": "../../etc/passwd"}}))
    with pytest.raises(PretrainedError, match="not a file name"):
        GPT.from_pretrained(broken)
    (broken / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"transformer.wte.weight": "model-2.safetensors"}}))
    with pytest.raises(PretrainedError, match="model-2.safetensors.*missing"):
        GPT.from_pretrained(broken)
    (broken / "model.safetensors.index.json").unlink()
    (broken / "config.json").unlink()
    with pytest.raises(PretrainedError, match="config.json.*missing"):
        GPT.from_pretrained(broken)
    with pytest.raises(FileNotFoundError):
        GPT.from_pretrained(broken / "no-such-folder")


def test_mapped_file_copies_in_slabs(tmp_path):
    w = np.arange(6 * 5, dtype=np.float32).reshape(6, 5)
    tg.save({"w": w}, tmp_path / "f.safetensors")
    with MappedFile(tmp_path / "f.safetensors") as mapped:
        mapped.SLAB_BYTES = 20  # one row per slab
        out = np.zeros((5, 6), np.float32)
        mapped.copy_into("w", out.T)
        assert not mapped.array("w").flags.writeable
    np.testing.assert_array_equal(out, w.T)
    loaded = tg.load(tmp_path / "f.safetensors", mmap=True)
    np.testing.assert_array_equal(loaded["w"].numpy(), w)


def test_demo_finetunes_evaluates_and_samples_a_pretrained_folder(tmp_path):
    """demos/gpt.py --init_from: nanoGPT's fine-tuning recipe on a tiny "pretrained" GPT-2
    (made here: tinygen's BPE in GPT-2's files + a transformers model of that vocabulary)."""
    import subprocess
    import sys

    from tinygen.data import BPETokenizer, GPT2Tokenizer, default_corpus

    text = default_corpus(20_000)
    corpus = tmp_path / "text.txt"
    corpus.write_text(text[:20_000], encoding="utf-8")
    tokenizer = GPT2Tokenizer.from_bpe(BPETokenizer.train(text[:20_000], 300))
    folder = tmp_path / "pretrained-gpt2"
    hf_model(vocab_size=tokenizer.vocab_size).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_dir = tmp_path / "out"

    def demo(*extra):
        out = subprocess.run([sys.executable, os.path.join(root, "demos", "gpt.py"), "--smoke",
                              "--init_from", str(folder), "--text", str(corpus), "--out_dir",
                              str(out_dir), "--max_iters", "4", "--eval_interval", "2", *extra],
                             capture_output=True, text=True, timeout=300, check=False,
                             env={**os.environ, "PYTHONPATH": root})
        assert out.returncode == 0, out.stderr
        return out.stdout

    stdout = demo("--eval_only")
    assert "val: loss" in stdout and "perplexity" in stdout
    summary = json.loads(demo().strip().splitlines()[-1])
    assert summary["tokenizer"] == "gpt2" and summary["vocab_size"] == tokenizer.vocab_size
    tuned = transformers.GPT2LMHeadModel.from_pretrained(out_dir / "pretrained")
    assert tuned.config.n_layer == TINY["n_layer"]
    assert "tokens/s sampled" in demo("--sample", "--prompt", "def ")

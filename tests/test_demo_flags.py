"""Every demo checks its whole configuration before any work: a bad flag exits with code 2
and one line on stderr naming the flag, the value and what is allowed (no traceback), fast,
before data or models exist. And demos/gpt.py trains a learner's own model class."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_demo(name, *flags, cwd=None, timeout=60):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.time()
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "demos", f"{name}.py"), *flags],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd,
                          check=False)
    return proc, time.time() - t0


# (demo, flags, what the one line must say): the cases of issue #11 first
BAD_FLAGS = [
    ("gpt", ["--tokenizer", "foo"], "invalid choice: 'foo'"),
    ("gpt", ["--n_layer", "0"], "--n_layer=0: must be >= 1"),
    ("gpt", ["--eval_interval", "0"], "--eval_interval=0: must be >= 1"),
    ("gpt", ["--n_head", "5"], "--n_head=5: must divide n_embd=128"),
    ("gpt", ["--learning_rate", "-1"], "--learning_rate=-1.0: must be >= 0"),
    ("vae", ["--epochs", "0"], "--epochs=0: must be >= 1"),
    ("ppo_cartpole", ["--num_envs", "0"], "--num_envs=0: must be >= 1"),
    # more of each demo
    ("gpt", ["--dropout", "1.5"], "--dropout=1.5: must lie in [0.0, 1.0]"),
    ("gpt", ["--text", "/no/such/file.txt"], "--text=/no/such/file.txt: no such file"),
    ("gpt", ["--model", "no_such_module:Model"], "--model=no_such_module:Model: cannot import"),
    ("gpt", ["--model", "GPT"], "--model=GPT: must be module:Class"),
    ("gpt", ["--device", "gpu"], "--device=gpu: must be cpu, cuda or cuda:N"),
    ("gpt", ["--n_layer", "two"], "invalid int value: 'two'"),
    ("gpt", ["--sample"], "--sample=True: needs a checkpoint"),
    ("gpt", ["--resume"], "--resume=True: needs a checkpoint"),
    ("vae", ["--model", "resnet"], "invalid choice: 'resnet'"),
    ("vae", ["--dataset", "mnist"], "--dataset=mnist: mnist needs --data"),
    ("vae", ["--n_test", "10", "--n_interpolations", "8"], "--n_interpolations=8: must be <="),
    ("ppo_cartpole", ["--gamma", "1.5"], "--gamma=1.5: must lie in [0.0, 1.0]"),
    ("ppo_cartpole", ["--threads", "0"], "--threads=0: must be >= 1"),
    ("ppo_cartpole", ["--total_timesteps", "100"], "--total_timesteps=100: must be >= "),
    ("gan", ["--dataset", "moons"], "invalid choice: 'moons'"),
    ("gan", ["--steps", "0"], "--steps=0: must be >= 1"),
    ("gan", ["--batch_size", "255"], "--batch_size=255: must be a multiple of pac=2"),
    ("gan", ["--dataset", "fashion", "--r1_gamma", "1"], "--r1_gamma=1.0: the R1 penalty"),
    ("gan", ["--lr", "-0.1"], "--lr=-0.1: must be >= 0"),
    ("clip", ["--vision", "resnet"], "invalid choice: 'resnet'"),
    ("clip", ["--text_heads", "3"], "--text_heads=3: must divide text_width=64"),
    ("clip", ["--beta2", "2"], "--beta2=2.0: must lie in [0.0, 1.0]"),
    ("dalle", ["--n_head", "3"], "--n_head=3: must divide n_embd=128"),
    ("dalle", ["--vq_iters", "0"], "--vq_iters=0: must be >= 1"),
    ("dalle", ["--n_train", "10"], "--vq_batch=64: must be <= n_train=10"),
    ("dalle", ["--clip", "/no/such.safetensors"], "--clip=/no/such.safetensors: no such file"),
    ("rlhf", ["--p_correct", "1.2"], "--p_correct=1.2: must lie in [0.0, 1.0]"),
    ("rlhf", ["--p_correct", "0.7", "--p_lazy", "0.5"], "--p_lazy=0.5: p_correct + p_lazy"),
    ("rlhf", ["--max_len", "2"], "--max_len=2: must be >= min_len=3"),
    ("rlhf", ["--dpo_beta", "0"], "--dpo_beta=0.0: must be > 0"),
    ("rlhf", ["--ppo_iters", "0"], "--ppo_iters=0: must be >= 1"),
]


@pytest.mark.parametrize("demo,flags,expected", BAD_FLAGS,
                         ids=[f"{d}{''.join(f)}" for d, f, _ in BAD_FLAGS])
def test_bad_flag_exits_at_once_with_one_line(demo, flags, expected, tmp_path):
    proc, seconds = run_demo(demo, *flags, "--out_dir", str(tmp_path / "out"))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert expected in proc.stderr, proc.stderr
    assert proc.stdout == ""                       # nothing ran: no data, no model
    assert not (tmp_path / "out").exists()         # not even the output folder
    assert seconds < 30  # about 0.5 s alone; the margin is for a busy shared machine


# ---- demos/gpt.py trains other models --------------------------------------------------------
TINY_MODEL = '''
import numpy as np

import tinygen as tg
import tinygen.nn as nn
import tinygen.nn.functional as F
from tinygen.models.gpt import GPT, sample


class Bigram(nn.Module):
    """A bigram model: the next token's logits from the current token alone."""

    def __init__(self, config):
        self.config = config
        self.table = nn.Embedding(config.vocab_size, config.vocab_size)

    def forward(self, idx, targets=None):
        logits = self.table(idx)                                  # [B, T, V]
        if targets is None:
            return logits, None
        B, T, V = logits.shape
        return logits, F.cross_entropy(logits.reshape(B * T, V), targets.reshape(B * T))

    def configure_optimizers(self, weight_decay, learning_rate, betas):
        from tinygen import optim
        return optim.AdamW(self.parameters(), lr=learning_rate, betas=betas,
                           weight_decay=weight_decay)

    @tg.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
        ids = idx.numpy()
        for _ in range(max_new_tokens):
            logits, _ = self(tg.tensor(ids[:, -1:]))
            ids = np.concatenate([ids, sample(logits.data[:, -1], temperature, top_k).numpy()[:, None]],
                                 axis=1)
        return tg.tensor(ids)


class WiderGPT(GPT):
    """A learner's GPT variant: everything inherited, the loop reused."""
'''


def test_gpt_demo_trains_a_custom_model_class(tmp_path):
    (tmp_path / "mymodels.py").write_text(textwrap.dedent(TINY_MODEL))
    out = tmp_path / "out"
    proc, _ = run_demo("gpt", "--smoke", "--model", "mymodels:Bigram", "--out_dir", str(out),
                       cwd=tmp_path, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "Bigram:" in proc.stdout
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["params"] == 300 * 300  # the bigram table, smoke's BPE vocabulary of 300
    assert (out / "loss.png").exists() and (out / "summary.json").exists()
    # sampling rebuilds the same class from the checkpoint's config
    proc, _ = run_demo("gpt", "--sample", "--out_dir", str(out), "--max_new_tokens", "5",
                       "--num_samples", "1", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    proc, _ = run_demo("gpt", "--model", "mymodels:Nope", "--out_dir", str(out), cwd=tmp_path)
    assert proc.returncode == 2 and "mymodels has no Nope" in proc.stderr


def test_gpt_demo_main_takes_argv_and_a_build_model_hook(tmp_path, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("gpt_demo", os.path.join(ROOT, "demos",
                                                                           "gpt.py"))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)  # importing runs nothing: main() does
    assert capsys.readouterr().out == ""
    built = []

    def build_model(cfg, model_config):
        built.append(model_config)
        return demo.GPT(model_config)

    demo.main(["--smoke", "--max_iters", "4", "--out_dir", str(tmp_path)],
              build_model=build_model)
    assert len(built) == 1 and built[0].n_layer == 2 and built[0].vocab_size == 300
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary == json.loads((tmp_path / "summary.json").read_text())

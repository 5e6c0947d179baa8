"""Train a small GPT on text and sample from it: data -> tokenizer -> model -> training
loop -> checkpoint -> samples, top to bottom (after nanoGPT's train.py and sample.py).

    python demos/gpt.py                        # the Python standard library's sources
    python demos/gpt.py --text ../shared/data/tinyshakespeare.txt --tokenizer char
    python demos/gpt.py --resume               # continue from <out_dir>/ckpt.safetensors
    python demos/gpt.py --sample --prompt "def "   # only sample from the saved checkpoint
    python demos/gpt.py --smoke                # a few seconds, to check that it all runs
    python demos/gpt.py --init_from PATH --text FILE   # fine-tune pretrained GPT-2 (a HF folder)
    python demos/gpt.py --init_from PATH --text FILE --eval_only   # its loss and perplexity
    python demos/gpt.py --init_from PATH --sample --prompt "To be"  # sample from it

It ends with one JSON line of headline figures, also written to <out_dir>/summary.json.
"""

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass

import numpy as np

import tinygen as tg
from tinygen.checkpoint import load_checkpoint, save_checkpoint
from tinygen.cli import parse_config
from tinygen.data import (
    BPETokenizer,
    CharTokenizer,
    GPT2Tokenizer,
    default_corpus,
    encode_corpus,
    get_batch,
    read_text,
    tokenizer_from_state_dict,
    train_val_split,
)
from tinygen.models.gpt import GPT, GPTConfig
from tinygen.optim import clip_grad_norm_
from tinygen.optim.lr_scheduler import warmup_cosine


@dataclass
class TrainConfig:
    # data
    text: str = ""                 # a UTF-8 file to train on; empty: the stdlib's sources
    corpus_bytes: int = 2_000_000  # how much of the default corpus to use
    tokenizer: str = "auto"        # char | bpe | auto (bpe for the default corpus)
    bpe_vocab_size: int = 512      # vocabulary of the BPE tokenizer (256 bytes + merges)
    # model (nanoGPT's CPU config)
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64
    dropout: float = 0.0
    bias: bool = True
    # optimisation (nanoGPT's CPU recipe)
    batch_size: int = 12
    max_iters: int = 3000
    learning_rate: float = 1e-3
    min_lr: float = 1e-4           # cosine decay ends here
    warmup_iters: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0         # 0 turns clipping off
    # evaluation, logging, checkpoints
    eval_interval: int = 500
    eval_iters: int = 20
    log_interval: int = 100
    out_dir: str = "out/gpt"
    resume: bool = False
    init_from: str = ""            # fine-tune a pretrained GPT-2 folder (docs/pretrained.md)
    eval_only: bool = False        # print loss and perplexity on the data, then stop
    # sampling
    sample: bool = False           # skip training: load the checkpoint and sample
    prompt: str = "\n"
    num_samples: int = 2
    max_new_tokens: int = 300
    temperature: float = 0.8
    top_k: int = 40
    # run
    device: str = "cpu"
    seed: int = 1337
    smoke: bool = False            # a tiny run of a few seconds


def parse_args():
    cfg = parse_config(TrainConfig, __doc__)
    if cfg.smoke:
        cfg = dataclasses.replace(cfg, max_iters=20, eval_interval=10, eval_iters=2,
                                  log_interval=5, corpus_bytes=100_000, bpe_vocab_size=300,
                                  n_layer=2, n_embd=32, n_head=2, block_size=32,
                                  batch_size=4, max_new_tokens=40, num_samples=1)
    if cfg.init_from:  # nanoGPT's finetune_shakespeare, for the fields left at their defaults
        recipe = {"learning_rate": 3e-5, "min_lr": 3e-5, "warmup_iters": 0, "max_iters": 20,
                  "eval_interval": 5, "weight_decay": 0.0, "grad_clip": 1.0}
        defaults = TrainConfig()
        cfg = dataclasses.replace(cfg, **{k: v for k, v in recipe.items()
                                          if getattr(cfg, k) == getattr(defaults, k)})
    return cfg


cfg = parse_args()
os.makedirs(cfg.out_dir, exist_ok=True)
ckpt_path = os.path.join(cfg.out_dir, "ckpt.safetensors")
tg.manual_seed(cfg.seed)
batch_rng = np.random.default_rng(cfg.seed)  # draws the training batches

# ---- sampling only: rebuild model and tokenizer from the checkpoint -----------------------
if cfg.sample and cfg.init_from:  # the pretrained model (fine-tuned, if out_dir holds it)
    tokenizer = GPT2Tokenizer.from_pretrained(cfg.init_from)
    tuned = os.path.join(cfg.out_dir, "pretrained")
    model = GPT.from_pretrained(tuned if os.path.isdir(tuned) else cfg.init_from)
elif cfg.sample:
    ckpt = tg.load(ckpt_path)
    tokenizer = tokenizer_from_state_dict(ckpt["tokenizer"])
    model = GPT(GPTConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
if cfg.sample:
    model.to(cfg.device)
    prompt = np.array([tokenizer.encode(cfg.prompt)] * cfg.num_samples)
    t0 = time.time()
    out = model.generate(tg.tensor(prompt, device=cfg.device), cfg.max_new_tokens,
                         cfg.temperature, cfg.top_k)
    for row in tg.tensor(out).numpy():
        print(tokenizer.decode(row.tolist()))
        print("-" * 60)
    print(f"{cfg.num_samples * cfg.max_new_tokens / (time.time() - t0):.0f} tokens/s sampled")
    raise SystemExit

# ---- data ---------------------------------------------------------------------------------
if cfg.text:
    text, corpus = read_text(cfg.text), cfg.text
else:
    text, corpus = default_corpus(cfg.corpus_bytes), "python-stdlib"
kind = cfg.tokenizer if cfg.tokenizer != "auto" else ("char" if cfg.text else "bpe")
if cfg.init_from:  # the pretrained model's own tokenizer
    tokenizer, kind = GPT2Tokenizer.from_pretrained(cfg.init_from), "gpt2"
elif cfg.resume:
    tokenizer = tokenizer_from_state_dict(tg.load(ckpt_path)["tokenizer"])
elif kind == "bpe":
    tokenizer = BPETokenizer.train(text, cfg.bpe_vocab_size)
else:
    tokenizer = CharTokenizer.from_text(text)
ids = encode_corpus(text, tokenizer).astype(np.int64)
train_ids, val_ids = train_val_split(ids, val_frac=0.1)
print(f"corpus {corpus}: {len(text):,} characters -> {len(ids):,} tokens "
      f"({kind}, vocab {tokenizer.vocab_size}); train {len(train_ids):,}, val {len(val_ids):,}")


def batch(split):
    x, y = get_batch(train_ids if split == "train" else val_ids, cfg.batch_size,
                     cfg.block_size, batch_rng)
    return tg.tensor(x, device=cfg.device), tg.tensor(y, device=cfg.device)


# ---- model and optimizer -----------------------------------------------------------------
model_config = GPTConfig(n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd,
                         block_size=cfg.block_size, vocab_size=tokenizer.vocab_size,
                         dropout=cfg.dropout, bias=cfg.bias)
model = GPT.from_pretrained(cfg.init_from, cfg.dropout) if cfg.init_from else GPT(model_config)
model_config = model.config
model.to(cfg.device)
optimizer = model.configure_optimizers(cfg.weight_decay, cfg.learning_rate,
                                       (cfg.beta1, cfg.beta2))
print(f"GPT: {model.num_parameters() / 1e6:.2f}M parameters on {cfg.device}")
start_iter, best_val = 0, float("inf")
if cfg.resume:
    ckpt = load_checkpoint(ckpt_path, model, optimizer, rngs={"batches": batch_rng},
                           device=cfg.device)
    start_iter, best_val = ckpt["step"], ckpt["best_val_loss"]
    print(f"resumed from {ckpt_path} at step {start_iter}")


@tg.no_grad()
def estimate_loss():
    """Mean loss over eval_iters batches of each split (no dropout)."""
    model.eval()
    out = {}
    for split in ("train", "val"):
        out[split] = float(np.mean([model(*batch(split))[1].item()
                                    for _ in range(cfg.eval_iters)]))
    model.train()
    return out


if cfg.eval_only:
    losses = estimate_loss()
    for split, loss in losses.items():
        print(f"{split}: loss {loss:.4f}, perplexity {math.exp(loss):.2f}")
    raise SystemExit


def checkpoint(step, best):
    save_checkpoint(ckpt_path, model, optimizer, step, rngs={"batches": batch_rng},
                    best_val_loss=best, model_config=dataclasses.asdict(model_config),
                    config=dataclasses.asdict(cfg), tokenizer=tokenizer.state_dict())
    if cfg.init_from:  # and in the Hugging Face layout, for transformers and for --sample
        model.save_pretrained(os.path.join(cfg.out_dir, "pretrained"))
        tokenizer.save_pretrained(os.path.join(cfg.out_dir, "pretrained"))


# ---- training loop ------------------------------------------------------------------------
tokens_per_iter = cfg.batch_size * cfg.block_size
t_start = time.time()
t_last, losses = time.time(), {}
train_time, trained = 0.0, 0
for it in range(start_iter, cfg.max_iters + 1):
    lr = warmup_cosine(it, cfg.learning_rate, cfg.min_lr, cfg.warmup_iters, cfg.max_iters)
    for group in optimizer.param_groups:
        group["lr"] = lr
    if it % cfg.eval_interval == 0 or it == cfg.max_iters:
        losses = estimate_loss()
        print(f"step {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
        best_val = min(best_val, losses["val"])
        if it > start_iter:
            checkpoint(it, best_val)
    if it == cfg.max_iters:
        break
    t0 = time.time()
    _, loss = model(*batch("train"))
    optimizer.zero_grad()
    loss.backward()
    if cfg.grad_clip:
        clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    loss_value = loss.item()  # waits for the GPU, so the timing below is honest
    train_time += time.time() - t0
    trained += 1
    if not math.isfinite(loss_value):
        raise FloatingPointError(
            f"the training loss became {loss_value} at step {it}; stopping. The last good "
            f"checkpoint is {ckpt_path} (if one was written)")
    if it % cfg.log_interval == 0:
        tok_s = trained * tokens_per_iter / max(train_time, 1e-9)
        left = (cfg.max_iters - it) * train_time / trained
        print(f"iter {it}: loss {loss_value:.4f}, lr {lr:.2e}, {tok_s:,.0f} tokens/s, "
              f"{left:.0f}s left")

# ---- samples ------------------------------------------------------------------------------
prompt = tokenizer.encode(cfg.prompt if kind == "char" or cfg.text else "def ")
idx = tg.tensor(np.array([prompt] * cfg.num_samples), device=cfg.device)
out = model.generate(idx, cfg.max_new_tokens, cfg.temperature, cfg.top_k)
for row in tg.tensor(out).numpy():
    print("-" * 60)
    print(tokenizer.decode(row.tolist()))
print("-" * 60)

summary = {
    "val_loss": round(losses["val"], 4), "train_loss": round(losses["train"], 4),
    "best_val_loss": round(best_val, 4),
    "tokens_per_s": round(trained * tokens_per_iter / max(train_time, 1e-9)),
    "seconds": round(time.time() - t_start, 1), "iters": cfg.max_iters,
    "params": model.num_parameters(), "corpus": corpus, "tokenizer": kind,
    "vocab_size": tokenizer.vocab_size, "device": cfg.device, "seed": cfg.seed,
}
with open(os.path.join(cfg.out_dir, "summary.json"), "w") as f:
    json.dump(summary, f)
print(json.dumps(summary))

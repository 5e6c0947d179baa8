"""Train a small GPT on text and sample from it: data -> tokenizer -> model -> training
loop -> checkpoint -> samples, top to bottom (after nanoGPT's train.py and sample.py).

    python demos/gpt.py                        # the Python standard library's sources
    python demos/gpt.py --text ../shared/data/tinyshakespeare.txt --tokenizer char
    python demos/gpt.py --resume               # continue from <out_dir>/ckpt.safetensors
    python demos/gpt.py --sample --prompt "def "   # only sample from the saved checkpoint
    python demos/gpt.py --smoke                # a few seconds, to check that it all runs
    mpiexec -n 2 python demos/gpt.py --batch_size 64   # data parallel: 2 ranks × 32 rows

It ends with one JSON line of headline figures, also written to <out_dir>/summary.json.
"""

import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

import tinygen as tg
import tinygen.distributed as dist
from tinygen.checkpoint import load_checkpoint
from tinygen.cli import parse_config
from tinygen.data import (
    BPETokenizer,
    CharTokenizer,
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
    batch_size: int = 12           # the global batch: split over grad_accum and the ranks
    grad_accum: int = 1            # micro-batches per step (gradients add up, no_sync)
    zero1: bool = False            # under mpiexec: shard the optimizer state (ZeRO-1)
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
    return cfg


cfg = parse_args()
# ---- data parallel (mpiexec -n N): rank 0 logs, samples and saves; a lone process is rank 0
dist.init_process_group()
if cfg.batch_size % (cfg.grad_accum * dist.get_world_size()):
    raise SystemExit(f"--batch_size {cfg.batch_size} must split evenly into --grad_accum "
                     f"{cfg.grad_accum} × {dist.get_world_size()} processes")
if not dist.is_main_process():
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115  one log, rank 0's
os.makedirs(cfg.out_dir, exist_ok=True)
ckpt_path = os.path.join(cfg.out_dir, "ckpt.safetensors")
tg.manual_seed(cfg.seed)
batch_rng = np.random.default_rng(cfg.seed)  # draws the training batches

# ---- sampling only: rebuild model and tokenizer from the checkpoint -----------------------
if cfg.sample:
    ckpt = tg.load(ckpt_path)
    tokenizer = tokenizer_from_state_dict(ckpt["tokenizer"])
    model = GPT(GPTConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
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
if cfg.resume:
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
model = GPT(model_config)
model.to(cfg.device)
optimizer = model.configure_optimizers(cfg.weight_decay, cfg.learning_rate,
                                       (cfg.beta1, cfg.beta2))
ddp = dist.DistributedDataParallel(model)  # rank 0's initial weights on every rank
if cfg.zero1:
    optimizer = dist.ZeroRedundancyOptimizer(optimizer.param_groups, type(optimizer),
                                             **optimizer.defaults)
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
        # each rank scores its slice of the same batches; the mean of the means is the mean
        mean = np.array([np.mean([model(*(dist.local_batch(b) for b in batch(split)))[1].item()
                                  for _ in range(cfg.eval_iters)])])
        out[split] = float(dist.all_reduce(mean, dist.ReduceOp.AVG)[0])
    model.train()
    return out


def checkpoint(step, best):
    dist.save_checkpoint(ckpt_path, model, optimizer, step, rngs={"batches": batch_rng},
                         best_val_loss=best, model_config=dataclasses.asdict(model_config),
                         config=dataclasses.asdict(cfg), tokenizer=tokenizer.state_dict())


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
    x, y = batch("train")  # the global batch, drawn identically on every rank
    optimizer.zero_grad()
    loss_value = np.zeros(1)
    for micro in range(cfg.grad_accum):  # all but the last micro-batch only add up gradients
        with ddp.no_sync() if micro < cfg.grad_accum - 1 else contextlib.nullcontext():
            _, loss = ddp(dist.local_batch(x, micro, cfg.grad_accum),
                          dist.local_batch(y, micro, cfg.grad_accum))
            (loss / cfg.grad_accum).backward()
            loss_value += loss.item() / cfg.grad_accum  # waits for the GPU: honest timing
            if not cfg.zero1:
                ddp.sync_gradients()  # mean over ranks (ZeRO-1's step reduce-scatters)
    if cfg.grad_clip:
        if cfg.zero1:
            optimizer.clip_grad_norm_(cfg.grad_clip)
        else:
            clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    loss_value = float(dist.all_reduce(loss_value, dist.ReduceOp.AVG)[0])
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
if not dist.is_main_process():
    raise SystemExit
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
    "world_size": dist.get_world_size(), "grad_accum": cfg.grad_accum,
}
with open(os.path.join(cfg.out_dir, "summary.json"), "w") as f:
    json.dump(summary, f)
print(json.dumps(summary))

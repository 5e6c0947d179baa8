"""Train a small GPT on text and sample from it: data -> tokenizer -> model -> training
loop -> checkpoint -> samples, top to bottom (after nanoGPT's train.py and sample.py).

    python demos/gpt.py                        # the Python standard library's sources
    python demos/gpt.py --text input.txt --tokenizer char   # any UTF-8 text file
    python demos/gpt.py --resume               # continue from <out_dir>/ckpt.safetensors
    python demos/gpt.py --sample --prompt "def "   # only sample from the saved checkpoint
    python demos/gpt.py --model mygpt:MyGPT    # train your own model class with this loop
    python demos/gpt.py --smoke                # a few seconds, to check that it all runs
    mpiexec -n 2 python demos/gpt.py --batch_size 64   # data parallel: 2 ranks × 32 rows
    python demos/gpt.py --init_from PATH --text FILE   # fine-tune pretrained GPT-2 (a HF folder)
    python demos/gpt.py --init_from PATH --text FILE --eval_only   # its loss and perplexity
    python demos/gpt.py --init_from PATH --sample --prompt "To be"  # sample from it

For Shakespeare as in nanoGPT, download Karpathy's tinyshakespeare (char-rnn's
data/tinyshakespeare/input.txt, 1.1 MB) and pass its path with --text.

Your own model: `--model module:Class` imports `module` (from the current folder or
PYTHONPATH) and builds `Class(GPTConfig(...))`; the class needs GPT's interface:
`model(idx, targets) -> (logits, loss)`, `configure_optimizers(weight_decay,
learning_rate, betas)`, `generate(idx, max_new_tokens, temperature, top_k)`,
`num_parameters()` (subclassing tinygen.models.gpt.GPT gives all four). Or, from Python:
`main(argv, build_model=lambda cfg, model_config: MyGPT(model_config))`.

It ends with one JSON line of headline figures, also written to <out_dir>/summary.json,
and draws the training and validation losses into <out_dir>/loss.png.
"""

import contextlib
import dataclasses
import importlib
import math
import os
import re
import sys
import time
from dataclasses import dataclass

import numpy as np

import tinygen as tg
import tinygen.distributed as dist
from tinygen.checkpoint import load_checkpoint
from tinygen.checks import at_least, between, check_fields, one_of, require
from tinygen.cli import or_exit, parse_config
from tinygen.data import (
    BPETokenizer,
    CharTokenizer,
    GPT2Tokenizer,
    default_corpus,
    encode_corpus,
    read_text,
    tokenizer_from_state_dict,
    train_val_split,
)
from tinygen.models.gpt import GPT, GPTConfig
from tinygen.optim import clip_grad_norm_
from tinygen.optim.lr_scheduler import warmup_cosine
from tinygen.report import save_curves, write_summary


@dataclass
class TrainConfig:
    # data
    text: str = ""                 # a UTF-8 file to train on; empty: the stdlib's sources
    corpus_bytes: int = at_least(2_000_000, 1)  # how much of the default corpus to use
    tokenizer: str = one_of("auto", "char", "bpe")  # auto: bpe for the default corpus
    bpe_vocab_size: int = at_least(512, 257)  # vocabulary of the BPE tokenizer (256 + merges)
    # model (nanoGPT's CPU config)
    model: str = ""                # "module:Class" to train your own class; empty: GPT
    n_layer: int = at_least(4, 1)
    n_head: int = at_least(4, 1)
    n_embd: int = at_least(128, 1)  # a multiple of n_head
    block_size: int = at_least(64, 1)
    dropout: float = between(0.0, 0.0, 1.0)
    bias: bool = True
    norm: str = one_of("layernorm", "rmsnorm")  # the modern block (LLaMA's): --norm rmsnorm
    mlp: str = one_of("gelu", "swiglu")         # --mlp swiglu
    pos_emb: str = one_of("learned", "rope")    # --pos_emb rope (rotary positions)
    # optimisation (nanoGPT's CPU recipe)
    batch_size: int = at_least(12, 1)  # the global batch: split over grad_accum and the ranks
    grad_accum: int = at_least(1, 1)  # micro-batches per step (gradients add up, no_sync)
    zero1: bool = False            # under mpiexec: shard the optimizer state (ZeRO-1)
    max_iters: int = at_least(3000, 0)
    learning_rate: float = at_least(1e-3, 0.0)
    min_lr: float = at_least(1e-4, 0.0)  # cosine decay ends here
    warmup_iters: int = at_least(100, 0)
    weight_decay: float = at_least(0.1, 0.0)
    beta1: float = between(0.9, 0.0, 1.0)
    beta2: float = between(0.99, 0.0, 1.0)
    grad_clip: float = at_least(1.0, 0.0)  # 0 turns clipping off
    # evaluation, logging, checkpoints
    eval_interval: int = at_least(500, 1)
    eval_iters: int = at_least(20, 1)
    log_interval: int = at_least(100, 1)
    out_dir: str = "out/gpt"
    resume: bool = False
    init_from: str = ""            # fine-tune a pretrained GPT-2 folder (docs/pretrained.md)
    eval_only: bool = False        # print loss and perplexity on the data, then stop
    # sampling
    sample: bool = False           # skip training: load the checkpoint and sample
    prompt: str = "\n"
    num_samples: int = at_least(2, 1)
    max_new_tokens: int = at_least(300, 0)
    temperature: float = at_least(0.8, 0.0)  # 0: always the most likely token
    top_k: int = at_least(40, 0)   # 0: sample from the whole vocabulary
    # run
    device: str = "cpu"            # cpu | cuda | cuda:N
    seed: int = 1337
    smoke: bool = False            # a tiny run of a few seconds

    def __post_init__(self):
        check_fields(self)
        require(self.n_embd % self.n_head == 0, "n_head", self.n_head,
                f"must divide n_embd={self.n_embd} (each head gets n_embd / n_head channels)")
        require(self.min_lr <= self.learning_rate, "min_lr", self.min_lr,
                f"must be <= learning_rate={self.learning_rate}")
        require(not self.text or os.path.isfile(self.text), "text", self.text,
                "no such file")
        ckpt = os.path.join(self.out_dir, "ckpt.safetensors")
        for flag in ("resume", "sample"):
            if flag == "sample" and self.init_from:
                continue  # samples from the pretrained folder (or its fine-tuned copy)
            require(not getattr(self, flag) or os.path.isfile(ckpt), flag, True,
                    f"needs a checkpoint, and {ckpt} does not exist (train first, or --out_dir)")
        require(re.fullmatch(r"cpu|cuda(:\d+)?", self.device), "device", self.device,
                "must be cpu, cuda or cuda:N")
        require(not self.model or ":" in self.model, "model", self.model,
                "must be module:Class (e.g. mygpt:MyGPT)")
        self.model_config(vocab_size=1)  # GPTConfig's own checks, before any work

    def model_config(self, vocab_size):
        return GPTConfig(n_layer=self.n_layer, n_head=self.n_head, n_embd=self.n_embd,
                         block_size=self.block_size, vocab_size=vocab_size,
                         dropout=self.dropout, bias=self.bias, norm=self.norm,
                         mlp=self.mlp, pos_emb=self.pos_emb)


SMOKE = {"max_iters": 20, "eval_interval": 10, "eval_iters": 2, "log_interval": 5,
         "corpus_bytes": 100_000, "bpe_vocab_size": 300, "n_layer": 2, "n_embd": 32,
         "n_head": 2, "block_size": 32, "batch_size": 4, "max_new_tokens": 40, "num_samples": 1}


def model_class(spec):
    """The class named by "module:Class" (tinygen's GPT for ""); the module is imported
    from the current folder or PYTHONPATH."""
    if not spec:
        return GPT
    module_name, _, class_name = spec.partition(":")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"model={spec}: cannot import {module_name} ({e})") from None
    finally:
        sys.path.pop(0)
    if not hasattr(module, class_name):
        raise ValueError(f"model={spec}: {module_name} has no {class_name}")
    return getattr(module, class_name)


def build_model(cfg, model_config):
    """The model to train: `--model`'s class (tinygen's GPT by default) built from
    `model_config`. Pass your own function to `main` to build anything else."""
    return model_class(cfg.model)(model_config)


def main(argv=None, build_model=build_model):
    cfg = parse_config(TrainConfig, __doc__, argv, smoke=SMOKE)
    if cfg.init_from:  # nanoGPT's finetune_shakespeare, for the fields left at their defaults
        recipe = {"learning_rate": 3e-5, "min_lr": 3e-5, "warmup_iters": 0, "max_iters": 20,
                  "eval_interval": 5, "weight_decay": 0.0, "grad_clip": 1.0}
        defaults = TrainConfig()
        cfg = dataclasses.replace(cfg, **{k: v for k, v in recipe.items()
                                          if getattr(cfg, k) == getattr(defaults, k)})
    or_exit(lambda: model_class(cfg.model), TrainConfig)  # a bad --model fails now, too
    # ---- data parallel (mpiexec -n N): rank 0 logs, samples and saves; a lone process is rank 0
    dist.init_process_group()
    world = cfg.grad_accum * dist.get_world_size()
    or_exit(lambda: require(cfg.batch_size % world == 0, "batch_size", cfg.batch_size,
                            f"must split evenly into grad_accum={cfg.grad_accum} x "
                            f"{dist.get_world_size()} processes"), TrainConfig)
    if not dist.is_main_process():
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  one log, rank 0's
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
        if not cfg.model:  # the class it was trained with, unless --model says otherwise
            cfg = dataclasses.replace(cfg, model=ckpt.get("config", {}).get("model", ""))
        model = build_model(cfg, GPTConfig(**ckpt["model_config"]))
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
        return

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
          f"({kind}, vocab {tokenizer.vocab_size}); train {len(train_ids):,}, "
          f"val {len(val_ids):,}")

    # the token ids go to the device once; a batch is B window starts drawn on the host (the
    # draws of data.get_batch, so runs and resumes match it) and gathered on the device
    device_ids = {"train": tg.tensor(train_ids, device=cfg.device).data,
                  "val": tg.tensor(val_ids, device=cfg.device).data}
    offsets = tg.arange(cfg.block_size + 1, device=cfg.device).data[None, :]   # [1, T + 1]
    for split, data in device_ids.items():
        if len(data) < cfg.block_size + 1:
            raise SystemExit(f"demos/gpt.py: the {split} split has {len(data)} tokens, fewer "
                             f"than block_size + 1 = {cfg.block_size + 1}: use a longer text "
                             "or a smaller --block_size")

    def batch(split):
        data = device_ids[split]
        starts = batch_rng.integers(0, len(data) - cfg.block_size, size=cfg.batch_size)
        starts = tg.tensor(starts, device=cfg.device).data[:, None]              # [B, 1]
        windows = data[starts + offsets]                                          # [B, T + 1]
        xp = tg.backend.get_array_module(windows)
        return (tg.Tensor(xp.ascontiguousarray(windows[:, :-1])),
                tg.Tensor(xp.ascontiguousarray(windows[:, 1:])))

    # ---- model and optimizer -----------------------------------------------------------------
    if cfg.init_from:
        model = GPT.from_pretrained(cfg.init_from, cfg.dropout)
        model_config = model.config
    else:
        model_config = cfg.model_config(tokenizer.vocab_size)
        model = build_model(cfg, model_config)
    model.to(cfg.device)
    optimizer = model.configure_optimizers(cfg.weight_decay, cfg.learning_rate,
                                           (cfg.beta1, cfg.beta2))
    ddp = dist.DistributedDataParallel(model)  # rank 0's initial weights on every rank
    if cfg.zero1:
        optimizer = dist.ZeroRedundancyOptimizer(optimizer.param_groups, type(optimizer),
                                                 **optimizer.defaults)
    print(f"{type(model).__name__}: {model.num_parameters() / 1e6:.2f}M parameters on {cfg.device}")
    start_iter, best_val = 0, float("inf")
    if cfg.resume:
        ckpt = load_checkpoint(ckpt_path, model, optimizer, rngs={"batches": batch_rng},
                               device=cfg.device)
        start_iter, best_val = ckpt["step"], ckpt["best_val_loss"]
        print(f"resumed from {ckpt_path} at step {start_iter}")

    @tg.no_grad()
    def estimate_loss():
        """Mean loss over eval_iters batches of each split (no dropout). Each rank scores
        its slice of the same batches; the mean of the ranks' means is the mean."""
        out = {}
        with model.evaluating():
            for split in ("train", "val"):
                total = sum(model(*(dist.local_batch(b) for b in batch(split)))[1]
                            for _ in range(cfg.eval_iters))            # on the device
                mean = np.array([total.item() / cfg.eval_iters])  # one sync per split
                out[split] = float(dist.all_reduce(mean, dist.ReduceOp.AVG)[0])
        return out

    if cfg.eval_only:
        losses = estimate_loss()
        for split, loss in losses.items():
            print(f"{split}: loss {loss:.4f}, perplexity {math.exp(loss):.2f}")
        return

    def checkpoint(step, best):
        dist.save_checkpoint(ckpt_path, model, optimizer, step, rngs={"batches": batch_rng},
                             best_val_loss=best, model_config=dataclasses.asdict(model_config),
                             config=dataclasses.asdict(cfg), tokenizer=tokenizer.state_dict())
        if cfg.init_from and dist.is_main_process():  # also the Hugging Face layout
            model.save_pretrained(os.path.join(cfg.out_dir, "pretrained"))
            tokenizer.save_pretrained(os.path.join(cfg.out_dir, "pretrained"))

    # ---- training loop ------------------------------------------------------------------------
    tokens_per_iter = cfg.batch_size * cfg.block_size
    t_start = time.time()
    losses = {}
    train_time, trained = 0.0, 0
    curves = {"train": ([], []), "val": ([], [])}  # (steps, losses) for loss.png
    pending = []     # (step, loss as a 0-d device tensor) since the last read: no sync per step
    t_stretch = None  # when the current stretch of timed steps began (it ends with a read)
    for it in range(start_iter, cfg.max_iters + 1):
        lr = warmup_cosine(it, cfg.learning_rate, cfg.min_lr, cfg.warmup_iters, cfg.max_iters)
        optimizer.set_lr(lr)
        if it % cfg.eval_interval == 0 or it == cfg.max_iters:
            losses = estimate_loss()
            print(f"step {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
            best_val = min(best_val, losses["val"])
            curves["val"][0].append(it)
            curves["val"][1].append(losses["val"])
            if it > start_iter:
                checkpoint(it, best_val)
        if it == cfg.max_iters:
            break
        if t_stretch is None:
            t_stretch = time.time()
        x, y = batch("train")  # the global batch, drawn identically on every rank
        optimizer.zero_grad()
        micro_losses = []
        for micro in range(cfg.grad_accum):  # all but the last micro-batch only add gradients
            with ddp.no_sync() if micro < cfg.grad_accum - 1 else contextlib.nullcontext():
                _, loss = ddp(dist.local_batch(x, micro, cfg.grad_accum),
                              dist.local_batch(y, micro, cfg.grad_accum))
                (loss / cfg.grad_accum).backward()
                micro_losses.append(loss.detach())  # 0-d, stays on the device
                if not cfg.zero1:
                    ddp.sync_gradients()  # mean over ranks (ZeRO-1's step reduce-scatters)
        if cfg.grad_clip:
            if cfg.zero1:
                optimizer.clip_grad_norm_(cfg.grad_clip)
            else:
                clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        pending.append((it, micro_losses))
        trained += 1
        log = it % cfg.log_interval == 0
        if not (log or it + 1 == cfg.max_iters or (it + 1) % cfg.eval_interval == 0):
            continue
        # a read: the pending losses in one device-to-host copy (which waits for the GPU, so
        # the stretch's time is honest), then their mean over ranks in one all-reduce
        values = tg.stack([v for _, vs in pending for v in vs]).numpy().astype(np.float64)
        values = values.reshape(len(pending), cfg.grad_accum).mean(axis=1)  # per step
        values = dist.all_reduce(values, dist.ReduceOp.AVG)
        train_time += time.time() - t_stretch
        t_stretch = None
        curves["train"][0].extend(step for step, _ in pending)
        curves["train"][1].extend(values.tolist())
        pending = []
        loss_value = float(values[-1])
        if not np.isfinite(values).all():
            bad = curves["train"][0][-len(values) + int(np.argmin(np.isfinite(values)))]
            raise FloatingPointError(
                f"the training loss became {loss_value} (first at step {bad}); stopping. The "
                f"last good checkpoint is {ckpt_path} (if one was written)")
        if log:
            tok_s = trained * tokens_per_iter / max(train_time, 1e-9)
            left = (cfg.max_iters - it) * train_time / trained
            print(f"iter {it}: loss {loss_value:.4f}, lr {lr:.2e}, {tok_s:,.0f} tokens/s, "
                  f"{left:.0f}s left")

    # ---- samples ------------------------------------------------------------------------------
    if not dist.is_main_process():
        return
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
    save_curves(os.path.join(cfg.out_dir, "loss.png"), curves, title="GPT loss")
    write_summary(cfg.out_dir, summary)


if __name__ == "__main__":
    main()

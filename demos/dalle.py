"""Text to image, DALL·E style (Ramesh et al. 2021), on procedural shapes with captions:
a VQ-VAE turns images into 8x8 grids of tokens, a GPT learns captions followed by image
tokens, and drawing an image is sampling tokens after a caption and decoding them; CLIP
then reranks N drawings per caption. Top to bottom: config -> data -> a judge -> stage 1
(VQ-VAE) -> stage 2 (the prior) -> CLIP -> drawing held-out prompts, scores and pictures.

    python demos/dalle.py                    # about 10-15 minutes on 2 CPU cores
    python demos/dalle.py --threads 2        # two BLAS threads (faster on idle cores)
    python demos/dalle.py --clip out/clip/ckpt.safetensors   # rerank with a trained CLIP
    python demos/dalle.py --device cuda
    python demos/dalle.py --smoke            # a few seconds, to check that it all runs

Zero-shot means unseen: the VQ-VAE, the prior and CLIP all train on the "train" split of
tinygen.data.shapes, which never shows the six held-out colour–shape pairs
(HELDOUT_COMBOS: red circle, green square, ...). The prompts drawn are exactly those pairs,
every position and size: 6 x 5 x 2 = 60 captions, `samples_per_prompt` images each.
The judge is an attribute classifier (tinygen.models.classifier.ConvClassifier with one
head per attribute) trained on all pairs: it is the measuring instrument, not part of the
model, like the Inception network behind an Inception Score. Scores:
  prompt_acc           share of all drawn images whose colour, shape and position the
                       judge reads as the caption says (size is reported on its own)
  prompt_acc_reranked  the same for the one image per prompt that CLIP ranks first
  prompt_acc_seen      prompt_acc on 60 captions of seen pairs (for comparison)
  codebook_usage       share of the K codes used to tokenize 1,000 test images
  recon_mse            VQ-VAE reconstruction error per pixel on test images of seen pairs
                       (recon_mse_heldout: of the held-out pairs, which it never saw)
The README gives the figures measured with the defaults.
Outputs in <out_dir>: heldout.png (one row per held-out prompt: the first 8 drawings as
drawn, then the same 8 ordered by CLIP, best first; the prompts are in heldout.txt),
recon.png (test images over their reconstructions), loss.png (the VQ-VAE's and the
prior's training losses), the two checkpoints, and summary.json, also printed as one
JSON line.
"""

import dataclasses
import math
import os
import time
from dataclasses import dataclass

import numpy as np

import tinygen as tg
from tinygen import optim
from tinygen.backend import to_numpy
from tinygen.checkpoint import save_checkpoint
from tinygen.checks import at_least, check_fields, require
from tinygen.cli import parse_config
from tinygen.data.loader import minibatch_steps
from tinygen.data.png import image_grid, write_png
from tinygen.data.shapes import (
    COLOURS,
    HELDOUT_COMBOS,
    POSITIONS,
    SEEN_COMBOS,
    SHAPES,
    SIZES,
    CaptionTokenizer,
    caption,
    make_shapes,
)
from tinygen.models.classifier import accuracy, predict, train_classifier
from tinygen.models.clip import CLIP, CLIPConfig
from tinygen.models.dalle import (
    DALLE,
    VQVAE,
    DALLEConfig,
    VQVAEConfig,
    codebook_usage,
    perplexity,
    rerank,
)
from tinygen.optim import clip_grad_norm_
from tinygen.optim.lr_scheduler import warmup_cosine
from tinygen.report import save_curves, write_summary
from tinygen.serialization import load


@dataclass
class TrainConfig:
    # data
    n_train: int = at_least(20_000, 1)  # captioned training images (seen colour–shape pairs)
    n_test: int = at_least(1000, 1)     # test images for the tokenizer's scores
    # the judge (attribute classifier)
    judge_train: int = at_least(20_000, 1)  # its training images, all 30 colour–shape pairs
    judge_epochs: int = at_least(4, 1)
    # stage 1: VQ-VAE
    hidden: int = at_least(64, 1)
    n_codes: int = at_least(128, 2)
    code_dim: int = at_least(32, 1)
    beta: float = at_least(0.25, 0.0)  # commitment cost
    vq_iters: int = at_least(1500, 1)
    vq_batch: int = at_least(64, 1)
    vq_lr: float = at_least(1e-3, 0.0)
    restart_every: int = at_least(100, 1)  # move codes unused for this many steps onto data
    # stage 2: the prior (a GPT over 10 text + 64 image tokens)
    n_layer: int = at_least(4, 1)
    n_head: int = at_least(4, 1)
    n_embd: int = at_least(128, 1)     # a multiple of n_head
    prior_iters: int = at_least(2000, 1)
    prior_batch: int = at_least(64, 1)
    learning_rate: float = at_least(1e-3, 0.0)
    min_lr: float = at_least(1e-4, 0.0)
    warmup_iters: int = at_least(100, 0)
    weight_decay: float = at_least(0.1, 0.0)
    grad_clip: float = at_least(1.0, 0.0)
    # drawing
    samples_per_prompt: int = at_least(16, 1)  # N drawings per caption; CLIP keeps the best
    temperature: float = at_least(1.0, 0.0)
    top_k: int = at_least(0, 0)        # 0: sample from all codes
    # CLIP for reranking: a checkpoint of demos/clip.py; empty: train one here
    clip: str = ""
    clip_iters: int = at_least(1600, 1)
    # logging and outputs
    log_interval: int = at_least(250, 1)
    out_dir: str = "out/dalle"
    grid_prompts: int = at_least(12, 1)  # rows of heldout.png
    # run
    device: str = "cpu"
    threads: int = at_least(1, 1)      # BLAS threads (1: threads fighting over 2 busy
    #                                    cores made each training step several times slower)
    seed: int = 1337
    smoke: bool = False                # a tiny run of a few seconds

    def __post_init__(self):
        check_fields(self)
        require(self.n_embd % self.n_head == 0, "n_head", self.n_head,
                f"must divide n_embd={self.n_embd}")
        for name in ("vq_batch", "prior_batch"):
            require(getattr(self, name) <= self.n_train, name, getattr(self, name),
                    f"must be <= n_train={self.n_train}")
        require(not self.clip or os.path.isfile(self.clip), "clip", self.clip, "no such file")


SMOKE = {"n_train": 256, "n_test": 64, "judge_train": 256, "judge_epochs": 1, "hidden": 16,
         "n_codes": 32, "code_dim": 8, "vq_iters": 4, "vq_batch": 16, "restart_every": 2,
         "n_layer": 1, "n_head": 2, "n_embd": 32, "prior_iters": 4, "prior_batch": 16,
         "warmup_iters": 2, "samples_per_prompt": 2, "clip_iters": 4, "log_interval": 2,
         "grid_prompts": 2}

cfg = parse_config(TrainConfig, __doc__, smoke=SMOKE)
tg.set_num_threads(cfg.threads)
os.makedirs(cfg.out_dir, exist_ok=True)
tg.manual_seed(cfg.seed)
batch_rng = np.random.default_rng(cfg.seed)  # minibatch order and codebook restarts
t_start = time.time()
seconds = {}


def attributes(data):
    """The four labels of each image, int [N, 4]: colour, shape, position, size."""
    return np.stack([data.colour, data.shape, data.position, data.size], axis=1)


def lr_at(it, iters, lr):
    return warmup_cosine(it, lr, lr / 10, min(cfg.warmup_iters, iters // 10), iters)


# ---- data -----------------------------------------------------------------------------------
train = make_shapes(cfg.n_train, seed=cfg.seed, split="train")
test_seen = make_shapes(cfg.n_test, seed=cfg.seed + 1, split="test")
test_heldout = make_shapes(cfg.n_test, seed=cfg.seed + 1, split="heldout")
tokenizer = CaptionTokenizer()
train_text, _ = tokenizer.encode_batch(train.captions)                 # [N, 10]
print(f"shapes: {cfg.n_train} training pairs (seen pairs only); held out of training: "
      + ", ".join(f"{COLOURS[c]} {SHAPES[s]}" for c, s in HELDOUT_COMBOS))

# ---- the judge: an attribute classifier trained on every colour–shape pair ------------------
t0 = time.time()
judge_data = make_shapes(cfg.judge_train, seed=cfg.seed + 100, split="all")
judge = train_classifier(judge_data.images, attributes(judge_data),
                         n_classes=(len(COLOURS), len(SHAPES), len(POSITIONS), len(SIZES)),
                         epochs=cfg.judge_epochs, lr=2e-3, seed=cfg.seed, log=None)
judge_acc = accuracy(judge, test_heldout.images, attributes(test_heldout))
seconds["judge"] = time.time() - t0
print(f"judge: all four attributes right on {judge_acc:.3f} of real held-out-pair images "
      f"({seconds['judge']:.0f} s)")

# ---- stage 1: the VQ-VAE image tokenizer ----------------------------------------------------
t0 = time.time()
vq_config = VQVAEConfig(hidden=cfg.hidden, n_codes=cfg.n_codes, code_dim=cfg.code_dim,
                        beta=cfg.beta)
vqvae = VQVAE(vq_config)
vqvae.to(cfg.device)
vq_opt = optim.Adam(vqvae.parameters(), lr=cfg.vq_lr)
quantizer = vqvae.quantizer
vq_losses, pending = [], []  # for loss.png; pending: device losses not read yet
train_images = tg.tensor(train.images, device=cfg.device)  # uploaded once, batches gathered
for it, idx in minibatch_steps(cfg.n_train, cfg.vq_batch, cfg.vq_iters, batch_rng):
    images = train_images[idx]
    if it == 0:  # k-means on the first batch's encoder outputs: every code starts on data
        with tg.no_grad():
            z_e = vqvae.encode(images)
        quantizer.init_from(z_e.permute(0, 2, 3, 1).reshape(-1, cfg.code_dim).data,
                            seed=cfg.seed)
    vq_opt.set_lr(lr_at(it, cfg.vq_iters, cfg.vq_lr))
    recon, codes, loss = vqvae(images)
    vq_opt.zero_grad()
    loss.backward()
    vq_opt.step()
    pending.append(loss.detach())
    restarted = 0
    # restarts stop for the last fifth of training, so the final codes get to settle
    if (it + 1) % cfg.restart_every == 0 and it < 0.8 * cfg.vq_iters:
        with tg.no_grad():
            z_e = vqvae.encode(images)
        restarted = quantizer.restart_dead_codes(
            z_e.permute(0, 2, 3, 1).reshape(-1, cfg.code_dim).data,
            seed=int(batch_rng.integers(2**32)))
    if it % cfg.log_interval == 0 or it == cfg.vq_iters - 1 or restarted:
        vq_losses += tg.stack(pending).numpy().tolist()  # one host sync per log line
        pending = []
        print(f"vq-vae iter {it}: loss {vq_losses[-1]:.5f}"
              + (f", restarted {restarted} dead codes" if restarted else ""))
vqvae.eval()
with tg.no_grad():
    recon_mse, recon_mse_heldout = (
        float(np.mean((to_numpy(vqvae.detokenize(vqvae.tokenize(d.images)).data) - d.images)
                      ** 2)) for d in (test_seen, test_heldout))
test_tokens = vqvae.tokenize(test_seen.images)
usage = codebook_usage(test_tokens, cfg.n_codes)
seconds["vqvae"] = time.time() - t0
print(f"vq-vae: recon mse {recon_mse:.5f} (held-out pairs {recon_mse_heldout:.5f}), codebook "
      f"usage {usage:.2f}, perplexity {perplexity(test_tokens, cfg.n_codes):.1f} of "
      f"{cfg.n_codes} ({seconds['vqvae']:.0f} s)")
save_checkpoint(os.path.join(cfg.out_dir, "vqvae.safetensors"), vqvae, vq_opt, cfg.vq_iters,
                model_config=dataclasses.asdict(vq_config), config=dataclasses.asdict(cfg))

# ---- stage 2: the prior, a GPT over caption then image tokens ------------------------------
t0 = time.time()
train_tokens = vqvae.tokenize(train.images)                            # [N, 64]
prior_config = DALLEConfig(text_vocab=tokenizer.vocab_size, text_len=train_text.shape[1],
                           n_codes=cfg.n_codes, image_tokens=train_tokens.shape[1],
                           n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd)
prior = DALLE(prior_config)
prior.to(cfg.device)
prior_opt = prior.gpt.configure_optimizers(cfg.weight_decay, cfg.learning_rate, (0.9, 0.95))
print(f"prior: {prior.num_parameters() / 1e6:.2f}M parameters, sequences of "
      f"{prior_config.text_len} + {prior_config.image_tokens} tokens")
prior_losses, pending = [], []
train_text_on_device = tg.tensor(train_text, device=cfg.device)  # uploaded once
for it, idx in minibatch_steps(cfg.n_train, cfg.prior_batch, cfg.prior_iters, batch_rng):
    prior_opt.set_lr(lr_at(it, cfg.prior_iters, cfg.learning_rate))
    loss = prior(train_text_on_device[idx], train_tokens[idx])
    prior_opt.zero_grad()
    loss.backward()
    if cfg.grad_clip:
        clip_grad_norm_(prior.parameters(), cfg.grad_clip)
    prior_opt.step()
    pending.append(loss.detach())
    if it % cfg.log_interval == 0 or it == cfg.prior_iters - 1:
        values = tg.stack(pending).numpy().tolist()  # one host sync per log line
        pending = []
        prior_losses += values
        loss_value = values[-1]
        if not all(math.isfinite(v) for v in values):
            raise FloatingPointError(f"the prior's loss became {loss_value} by step {it}")
        print(f"prior iter {it}: loss {loss_value:.4f} nats per image token")
seconds["prior"] = time.time() - t0
save_checkpoint(os.path.join(cfg.out_dir, "prior.safetensors"), prior, prior_opt,
                cfg.prior_iters, model_config=dataclasses.asdict(prior_config),
                config=dataclasses.asdict(cfg), tokenizer=tokenizer.state_dict())

# ---- CLIP, to rerank the drawings -------------------------------------------------------------
t0 = time.time()
if cfg.clip:
    ckpt = load(cfg.clip, device=cfg.device)
    clip_model = CLIP(CLIPConfig(**ckpt["model_config"]))
    clip_model.load_state_dict(ckpt["model"])
    print(f"clip: loaded {cfg.clip}")
else:
    from tinygen.models.clip import train_clip

    # demos/clip.py's model: the conv image encoder and a one-layer text transformer
    clip_config = CLIPConfig(vocab_size=tokenizer.vocab_size, text_layers=1)
    if cfg.smoke:
        clip_config = dataclasses.replace(clip_config, embed_dim=16, vision_width=16,
                                          text_width=16, vision_layers=1)
    clip_model = CLIP(clip_config)
    clip_model.to(cfg.device)
    train_clip(clip_model, train, tokenizer, max_iters=cfg.clip_iters, seed=cfg.seed,
               device=cfg.device, log_interval=cfg.log_interval)
clip_model.to(cfg.device)
seconds["clip"] = time.time() - t0


# ---- drawing held-out (and seen) prompts --------------------------------------------------------
def prompts_for(combos):
    """Every caption of the given colour–shape pairs: each position and size."""
    return [(c, s, p, z) for c, s in combos for p in range(len(POSITIONS))
            for z in range(len(SIZES))]


def draw(prompt_attrs):
    """N images per prompt: NumPy [P, N, 3, S, S], and the prompts' captions."""
    texts = [caption(*a) for a in prompt_attrs]
    ids, _ = tokenizer.encode_batch(texts, prior_config.text_len)
    ids = np.repeat(ids, cfg.samples_per_prompt, axis=0)               # [P * N, 10]
    out = []
    for i in range(0, len(ids), 500):
        tokens = prior.generate(ids[i:i + 500], cfg.temperature, cfg.top_k or None)
        out.append(to_numpy(vqvae.detokenize(tokens).data))
    images = np.concatenate(out)
    return images.reshape(len(texts), cfg.samples_per_prompt, *images.shape[1:]), texts


def judge_drawings(images, prompt_attrs):
    """Per image, whether the judge reads colour, shape and position as asked [P, N], and
    whether it also reads the size as asked [P, N]."""
    P, N = images.shape[:2]
    read = predict(judge, images.reshape(P * N, *images.shape[2:])).numpy().reshape(P, N, 4)
    asked = np.asarray(prompt_attrs)[:, None, :]                       # [P, 1, 4]
    right = read == asked
    return right[..., :3].all(axis=-1), right.all(axis=-1)


t0 = time.time()
heldout_attrs = prompts_for(HELDOUT_COMBOS)
heldout_images, heldout_texts = draw(heldout_attrs)
right, right_with_size = judge_drawings(heldout_images, heldout_attrs)
orders = [rerank(clip_model, tokenizer, imgs, text)[0].numpy()
          for imgs, text in zip(heldout_images, heldout_texts)]
best = np.array([right[p, order[0]] for p, order in enumerate(orders)])
seen_attrs = [prompts_for(SEEN_COMBOS)[i] for i in np.random.default_rng(cfg.seed).choice(
    len(SEEN_COMBOS) * len(POSITIONS) * len(SIZES), len(heldout_attrs), replace=False)]
seen_images, _ = draw(seen_attrs)
right_seen, _ = judge_drawings(seen_images, seen_attrs)
seconds["drawing"] = time.time() - t0
print(f"held-out prompts: {right.mean():.3f} of drawings right (colour, shape, position; with "
      f"size {right_with_size.mean():.3f}), {best.mean():.3f} after CLIP reranking of "
      f"{cfg.samples_per_prompt}; seen prompts {right_seen.mean():.3f}")

# ---- pictures ---------------------------------------------------------------------------------
rows = np.linspace(0, len(heldout_texts) - 1, min(cfg.grid_prompts, len(heldout_texts)))
rows = rows.round().astype(int)
n_show = min(8, cfg.samples_per_prompt)
cells = []
for p in rows:  # as drawn | ordered by CLIP, best first
    cells += [heldout_images[p, :n_show], heldout_images[p, orders[p][:n_show]]]
grid = image_grid(np.concatenate(cells), nrow=2 * n_show, padding=2, pad_value=0.5)
write_png(os.path.join(cfg.out_dir, "heldout.png"), np.repeat(np.repeat(grid, 2, 0), 2, 1))
with open(os.path.join(cfg.out_dir, "heldout.txt"), "w") as f:
    f.write(f"heldout.png, one row per prompt: {n_show} drawings as drawn, then the same "
            "ordered by CLIP (best first)\n")
    f.writelines(f"row {r}: {heldout_texts[p]}  ({right[p].mean():.2f} of {cfg.samples_per_prompt}"
                 f" right, CLIP's first {'right' if best[p] else 'wrong'})\n"
                 for r, p in enumerate(rows))
n_recon = 16
with tg.no_grad():
    recon = to_numpy(vqvae.detokenize(vqvae.tokenize(test_seen.images[:n_recon])).data)
grid = image_grid(np.concatenate([test_seen.images[:n_recon], recon]), nrow=n_recon, padding=2,
                  pad_value=0.5)
write_png(os.path.join(cfg.out_dir, "recon.png"), np.repeat(np.repeat(grid, 2, 0), 2, 1))

summary = {
    "prompt_acc": round(float(right.mean()), 4),
    "prompt_acc_reranked": round(float(best.mean()), 4),
    "prompt_acc_with_size": round(float(right_with_size.mean()), 4),
    "prompt_acc_seen": round(float(right_seen.mean()), 4),
    "codebook_usage": round(usage, 4),
    "codebook_perplexity": round(perplexity(test_tokens, cfg.n_codes), 2),
    "recon_mse": round(recon_mse, 6), "recon_mse_heldout": round(recon_mse_heldout, 6),
    "judge_acc_heldout": round(judge_acc, 4),
    "samples_per_prompt": cfg.samples_per_prompt, "heldout_prompts": len(heldout_texts),
    "seconds": round(time.time() - t_start, 1),
    **{f"seconds_{k}": round(v, 1) for k, v in seconds.items()},
    "device": cfg.device, "seed": cfg.seed,
}
save_curves(os.path.join(cfg.out_dir, "loss.png"),
            {"vq-vae (mse + commitment)": vq_losses, "prior (nats per image token)": prior_losses},
            title="DALL·E: stage 1 and stage 2 training losses")
write_summary(cfg.out_dir, summary)

"""Train a small CLIP on procedural shapes with captions, then use it without further training:
zero-shot classification of colour–shape pairs it never saw, image <-> text retrieval and
captioning by retrieval, top to bottom (after Radford et al. 2021).

    python demos/clip.py                 # about 2 minutes on 2 shared CPU cores
    python demos/clip.py --threads 2     # two BLAS threads (faster on idle cores)
    python demos/clip.py --vision vit --vision_layers 2   # the ViT image encoder instead
    python demos/clip.py --device cuda
    python demos/clip.py --smoke         # a few seconds, to check that it all runs
    mpiexec -n 2 python demos/clip.py    # data parallel: each rank encodes half the batch

The training captions never pair some colours with some shapes (tinygen.data.shapes,
HELDOUT_COMBOS); the zero-shot test is on exactly those pairs. Protocol, all numbers on
images from seeds the training set never used:
  zero_shot_acc_heldout / _seen  classify each image into one of all 30 colour–shape pairs:
      softmax over all 300 captions (every colour, shape, size, position) at the learned
      temperature, then each pair's probability is the sum over its 10 captions (2 sizes x
      5 positions marginalised out); on images of held-out pairs / of seen pairs.
  ensemble_acc_heldout / _seen   the same classes by CLIP's prompt ensembling instead: each
      pair's text embedding is the mean of its 10 captions' embeddings.
  caption_acc_heldout / _seen    the nearest of all 300 captions is exactly right (all four
      attributes).
  retrieval_r1                   one image per caption (300 pairs, held-out ones included):
      mean of image -> text and text -> image R@1.
The README gives the figures measured with the defaults; in our runs the ViT encoder
(--vision vit --vision_layers 2) generalised less well to the held-out pairs than the conv.
Outputs in <out_dir>: captions.png (a grid of test images; the first rows are held-out
pairs) and captions.txt (each cell's true caption and top-3 retrieved captions: there is no
font to draw text into the PNG), loss.png (the training loss), the checkpoint, and
summary.json, also printed as one JSON line.
"""

import dataclasses
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

import tinygen as tg
import tinygen.distributed as dist
from tinygen.checkpoint import save_checkpoint
from tinygen.checks import at_least, between, check_fields, one_of, require
from tinygen.cli import parse_config
from tinygen.data.png import image_grid, write_png
from tinygen.data.shapes import (
    COLOURS,
    HELDOUT_COMBOS,
    POSITIONS,
    SHAPES,
    SIZES,
    CaptionTokenizer,
    all_captions,
    caption,
    make_shapes,
    render,
)
from tinygen.models.clip import (
    CLIP,
    CLIPConfig,
    caption_by_retrieval,
    clip_loss,
    embed_images,
    embed_texts,
    retrieval_recall_at_1,
    train_clip,
    zero_shot_classifier,
    zero_shot_marginal,
    zero_shot_predict,
)
from tinygen.report import save_curves, write_summary


@dataclass
class TrainConfig:
    # data
    n_train: int = at_least(20_000, 1)  # training pairs (seen colour–shape pairs only)
    n_test: int = at_least(600, 1)     # test images per split (seen pairs, held-out pairs)
    image_size: int = at_least(32, 8)
    # model
    embed_dim: int = at_least(64, 1)
    vision: str = one_of("conv", "vit")
    patch_size: int = at_least(4, 1)
    vision_layers: int = at_least(3, 1)  # conv: stride-2 stages (32 -> 4); vit: blocks (use 2)
    vision_heads: int = at_least(4, 1)
    vision_width: int = at_least(64, 1)
    text_layers: int = at_least(1, 1)  # 1 generalised to unseen pairs better than 2 in our runs
    text_heads: int = at_least(4, 1)
    text_width: int = at_least(64, 1)  # a multiple of text_heads
    # optimisation (CLIP's recipe: AdamW, warmup then cosine, betas (0.9, 0.98))
    batch_size: int = at_least(128, 2)  # pairs drawn per step (repeated captions are dropped)
    max_iters: int = at_least(1600, 1)
    learning_rate: float = at_least(1e-3, 0.0)
    min_lr: float = at_least(1e-4, 0.0)
    warmup_iters: int = at_least(50, 0)
    weight_decay: float = at_least(0.1, 0.0)
    beta1: float = between(0.9, 0.0, 1.0)
    beta2: float = between(0.98, 0.0, 1.0)
    eps: float = at_least(1e-6, 0.0)
    grad_clip: float = at_least(1.0, 0.0)  # 0 turns clipping off
    # logging and outputs
    log_interval: int = at_least(100, 1)
    out_dir: str = "out/clip"
    grid_rows: int = at_least(4, 1)    # rows of 8 test images in captions.png
    # run
    device: str = "cpu"
    threads: int = at_least(1, 1)      # BLAS threads (1: threads fighting over 2 busy
    #                                    cores made each training step several times slower)
    seed: int = 1337
    smoke: bool = False                # a tiny run of a few seconds

    def __post_init__(self):
        check_fields(self)
        require(self.text_width % self.text_heads == 0, "text_heads", self.text_heads,
                f"must divide text_width={self.text_width}")
        if self.vision == "vit":
            require(self.vision_width % self.vision_heads == 0, "vision_heads",
                    self.vision_heads, f"must divide vision_width={self.vision_width}")
            require(self.image_size % self.patch_size == 0, "patch_size", self.patch_size,
                    f"must divide image_size={self.image_size}")
        require(8 * self.grid_rows <= 2 * self.n_test, "grid_rows", self.grid_rows,
                f"must be <= n_test / 4 = {self.n_test // 4} (8 cells a row, half held-out)")


SMOKE = {"n_train": 256, "n_test": 60, "max_iters": 6, "batch_size": 32, "warmup_iters": 2,
         "log_interval": 2, "vision_layers": 1, "text_layers": 1, "vision_width": 32,
         "text_width": 32, "embed_dim": 32, "grid_rows": 1}




class DataParallelCLIP(CLIP):
    """CLIP whose forward takes the global batch under mpiexec -n N: each rank encodes its
    rows, the embeddings of all ranks are gathered with their gradients, and every rank
    takes the contrastive loss over all B pairs, as one process does (open_clip's
    gather_with_grad); DDP averages the gradients. In one process it is CLIP."""

    def forward(self, images, ids, eot):
        (images, _), (ids, _), (eot, _) = (dist.local_share(a) for a in (images, ids, eot))
        image_embeds = dist.all_gather_rows(self.encode_image(images))   # [B, D], all ranks
        text_embeds = dist.all_gather_rows(self.encode_text(ids, eot))
        return image_embeds, text_embeds, clip_loss(image_embeds, text_embeds, self.logit_scale)


cfg = parse_config(TrainConfig, __doc__, smoke=SMOKE)
dist.init_process_group()  # rank 0 alone logs, evaluates and writes
if not dist.is_main_process():
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115  one log, rank 0's
tg.set_num_threads(cfg.threads)
os.makedirs(cfg.out_dir, exist_ok=True)
tg.manual_seed(cfg.seed)
t_start = time.time()

# ---- data: train on seen colour–shape pairs, test on new images of seen and held-out pairs --
train = make_shapes(cfg.n_train, seed=cfg.seed, split="train", image_size=cfg.image_size)
test_seen = make_shapes(cfg.n_test, seed=cfg.seed + 1, split="test", image_size=cfg.image_size)
test_heldout = make_shapes(cfg.n_test, seed=cfg.seed + 1, split="heldout",
                           image_size=cfg.image_size)
tokenizer = CaptionTokenizer()
heldout_names = ", ".join(f"{COLOURS[c]} {SHAPES[s]}" for c, s in HELDOUT_COMBOS)
print(f"shapes: {cfg.n_train} training pairs, {cfg.n_test} + {cfg.n_test} test images; "
      f"held out of training: {heldout_names}")

# ---- model and optimizer --------------------------------------------------------------------
model_config = CLIPConfig(
    embed_dim=cfg.embed_dim, vision=cfg.vision,
    image_size=cfg.image_size, patch_size=cfg.patch_size,
    vision_layers=cfg.vision_layers, vision_heads=cfg.vision_heads,
    vision_width=cfg.vision_width, vocab_size=tokenizer.vocab_size,
    text_layers=cfg.text_layers, text_heads=cfg.text_heads, text_width=cfg.text_width)
model = DataParallelCLIP(model_config)
model.to(cfg.device)
if dist.get_world_size() > 1:  # batch norm over the global batch, as in one process
    model = dist.SyncBatchNorm.convert_sync_batchnorm(model)
ddp = dist.DistributedDataParallel(model, sync_in_backward=True)  # averaged in backward
print(f"CLIP: {model.num_parameters() / 1e6:.2f}M parameters on {cfg.device}")

# ---- training (tinygen.models.clip.train_clip: AdamW, warmup + cosine, clipped gradients) ----
result = train_clip(model, train, tokenizer, max_iters=cfg.max_iters, batch_size=cfg.batch_size,
                    learning_rate=cfg.learning_rate, min_lr=cfg.min_lr,
                    warmup_iters=cfg.warmup_iters, weight_decay=cfg.weight_decay,
                    betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, grad_clip=cfg.grad_clip,
                    seed=cfg.seed, device=cfg.device, log_interval=cfg.log_interval)
optimizer, it = result["optimizer"], result["iters"]
if not dist.is_main_process():
    sys.exit(0)
save_checkpoint(os.path.join(cfg.out_dir, "ckpt.safetensors"), model, optimizer, it,
                model_config=dataclasses.asdict(model_config), config=dataclasses.asdict(cfg),
                tokenizer=tokenizer.state_dict())

# ---- zero-shot classification into the 30 colour–shape pairs --------------------------------
captions, attrs = all_captions()                                      # 300 captions
caption_embeds = embed_texts(model, tokenizer, captions)              # [300, D]
caption_pair = attrs[:, 0] * len(SHAPES) + attrs[:, 1]                # colour–shape class
pairs = [(c, s) for c in range(len(COLOURS)) for s in range(len(SHAPES))]
prompts = [[caption(c, s, p, z) for p in range(len(POSITIONS)) for z in range(len(SIZES))]
           for c, s in pairs]
class_embeds = zero_shot_classifier(model, tokenizer, prompts)        # [30, D]


def zero_shot_accuracy(data):
    """(marginal, ensemble): classify each image into one of the 30 colour–shape pairs,
    either by summing the probabilities of a pair's 10 captions out of all 300, or by the
    nearest mean prompt embedding (CLIP's prompt ensembling)."""
    image_embeds = embed_images(model, data.images)
    target = data.colour * len(SHAPES) + data.shape                   # index into `pairs`
    marginal = zero_shot_marginal(image_embeds, caption_embeds, caption_pair, len(pairs),
                                  model.logit_scale.item()).numpy().argmax(axis=1)
    ensemble = zero_shot_predict(image_embeds, class_embeds).numpy()
    return float((marginal == target).mean()), float((ensemble == target).mean())


def caption_accuracy(data):
    """Share of images whose nearest caption (of all 300) is exactly their own."""
    nearest = (embed_images(model, data.images).numpy() @ caption_embeds.numpy().T).argmax(axis=1)
    return float(np.mean([captions[j] == c for j, c in zip(nearest, data.captions)]))


(zero_shot_acc_heldout, ensemble_acc_heldout), (zero_shot_acc_seen, ensemble_acc_seen) = (
    zero_shot_accuracy(test_heldout), zero_shot_accuracy(test_seen))
caption_acc_heldout, caption_acc_seen = (caption_accuracy(test_heldout),
                                         caption_accuracy(test_seen))

# ---- retrieval: one new image per caption, held-out pairs included ---------------------------
retrieval_images = render(*attrs.T, seed=cfg.seed + 2, image_size=cfg.image_size)
r1_i2t, r1_t2i = retrieval_recall_at_1(embed_images(model, retrieval_images), caption_embeds)
print(f"zero-shot colour–shape accuracy: held-out pairs {zero_shot_acc_heldout:.3f}, "
      f"seen pairs {zero_shot_acc_seen:.3f} (prompt ensembling: {ensemble_acc_heldout:.3f}, "
      f"{ensemble_acc_seen:.3f}); exact caption: held-out {caption_acc_heldout:.3f}"
      f", seen {caption_acc_seen:.3f}; retrieval R@1 image->text {r1_i2t:.3f}, "
      f"text->image {r1_t2i:.3f}")

# ---- captioning by retrieval: a grid of test images and their top-3 captions ----------------
n_cells = 8 * cfg.grid_rows
half = n_cells // 2
grid_images = np.concatenate([test_heldout.images[:half], test_seen.images[:n_cells - half]])
true_captions = test_heldout.captions[:half] + test_seen.captions[:n_cells - half]
top3 = caption_by_retrieval(embed_images(model, grid_images), caption_embeds, captions,
                            model.logit_scale.item(), k=3)
grid = image_grid(grid_images, nrow=8, padding=2, pad_value=0.5)
write_png(os.path.join(cfg.out_dir, "captions.png"), np.repeat(np.repeat(grid, 3, 0), 3, 1))
with open(os.path.join(cfg.out_dir, "captions.txt"), "w") as f:
    f.write("captions.png, row by row (8 per row); the first half are held-out colour–shape "
            "pairs.\n")
    for k, (truth, best) in enumerate(zip(true_captions, top3)):
        f.write(f"\n[row {k // 8}, col {k % 8}] {'held-out' if k < half else 'seen'}: "
                f"{truth}\n")
        f.writelines(f"  {p:.2f}  {text}{'  <- right' if text == truth else ''}\n"
                     for text, p in best)

summary = {
    "zero_shot_acc_heldout": round(zero_shot_acc_heldout, 4),
    "zero_shot_acc_seen": round(zero_shot_acc_seen, 4),
    "ensemble_acc_heldout": round(ensemble_acc_heldout, 4),
    "ensemble_acc_seen": round(ensemble_acc_seen, 4),
    "caption_acc_heldout": round(caption_acc_heldout, 4),
    "caption_acc_seen": round(caption_acc_seen, 4),
    "retrieval_r1": round((r1_i2t + r1_t2i) / 2, 4),
    "retrieval_r1_image_to_text": round(r1_i2t, 4), "retrieval_r1_text_to_image": round(r1_t2i, 4),
    "final_loss": round(result["final_loss"], 4), "logit_scale": round(model.logit_scale.item(), 3),
    "iters": it, "ms_per_iter": round(result["ms_per_iter"], 1),
    "seconds": round(time.time() - t_start, 1), "params": model.num_parameters(),
    "device": cfg.device, "seed": cfg.seed, "world_size": dist.get_world_size(),
    "pairs_per_s": round(1000 * cfg.batch_size / result["ms_per_iter"], 1),  # drawn, global
}
save_curves(os.path.join(cfg.out_dir, "loss.png"), {"contrastive loss": result["losses"]},
            title="CLIP training loss")
write_summary(cfg.out_dir, summary)

"""Train a variational autoencoder on images, then draw from it: data -> model -> training
loop -> test negative ELBO -> samples, reconstructions, interpolations (after PyTorch's
examples/vae/main.py), top to bottom.

    python demos/vae.py                       # MLP VAE (784-400-20) on Fashion-MNIST
    python demos/vae.py --model conv          # the convolutional VAE
    python demos/vae.py --dataset mnist --data DIR    # a folder with the MNIST IDX files
    python demos/vae.py --dataset procedural  # tinygen's own shapes (no files needed)
    python demos/vae.py --smoke               # a few seconds, to check that it all runs
    mpiexec -n 2 python demos/vae.py          # data parallel: 2 ranks × half of each batch

Images: Fashion-MNIST from Debian's dataset-fashion-mnist package if installed, else the
procedural shapes (it prints which). Writes samples.png, reconstructions.png (originals
above, reconstructions below), interpolations.png and loss.png (the training loss, step by
step) to --out_dir, and ends with one JSON
line of headline figures, also written to <out_dir>/summary.json.
"""

import math
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

import tinygen as tg
import tinygen.distributed as dist
from tinygen import optim
from tinygen.checks import at_least, check_fields, one_of, require
from tinygen.cli import parse_config
from tinygen.data.images import iterate_minibatches, load_images, to_float
from tinygen.data.png import image_grid, write_png
from tinygen.models.vae import VAEConfig, bernoulli_nll, build_vae, gaussian_kl
from tinygen.random import generator
from tinygen.report import save_curves, write_summary


@dataclass
class TrainConfig:
    # data
    dataset: str = one_of("auto", "fashion", "mnist", "procedural")
    # auto: --data, else Fashion-MNIST, else shapes
    data: str = ""                 # a folder with MNIST-layout IDX files (needed for mnist)
    n_train: int = at_least(0, 0)  # use only the first n training images (0: all 60,000)
    n_test: int = at_least(0, 0)   # use only the first n test images (0: all 10,000)
    # model
    model: str = one_of("mlp", "conv")
    n_latent: int = at_least(20, 1)  # dimensions of the latent code z
    # optimisation (PyTorch's examples/vae)
    epochs: int = at_least(10, 1)
    batch_size: int = at_least(128, 1)
    learning_rate: float = at_least(1e-3, 0.0)  # Adam
    # logging and pictures
    log_interval: int = at_least(100, 1)  # steps between log lines
    n_interpolations: int = at_least(8, 1)  # rows of interpolations.png, a pair of test images each
    interpolation_steps: int = at_least(10, 2)  # images per row, endpoints included
    out_dir: str = "out/vae"
    # run
    device: str = "cpu"
    seed: int = 1
    smoke: bool = False            # a tiny run of a few seconds

    def __post_init__(self):
        check_fields(self)
        require(self.dataset != "mnist" or self.data, "dataset", self.dataset,
                "mnist needs --data, a folder with its IDX files")
        require(not self.data or os.path.isdir(self.data), "data", self.data, "no such folder")
        require(not self.n_test or 2 * self.n_interpolations <= self.n_test,
                "n_interpolations", self.n_interpolations,
                f"must be <= n_test / 2 = {self.n_test // 2} (two test images a row)")
        require(not self.n_test or self.n_test >= 8, "n_test", self.n_test,
                "must be 0 (all) or >= 8 (reconstructions.png shows 8)")


SMOKE = {"epochs": 1, "n_train": 512, "n_test": 256, "log_interval": 2,
         "interpolation_steps": 6, "n_interpolations": 4}

cfg = parse_config(TrainConfig, __doc__, smoke=SMOKE)
# data parallel (mpiexec -n N): every rank draws each global batch and its noise and keeps
# its rows, so N ranks train what one process does; rank 0 alone logs, tests and writes
dist.init_process_group()
if not dist.is_main_process():
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115  one log, rank 0's
os.makedirs(cfg.out_dir, exist_ok=True)
tg.manual_seed(cfg.seed)                     # weights and the reparameterisation noise
order_rng = np.random.default_rng(cfg.seed)  # the order of the training images

# ---- data ---------------------------------------------------------------------------------
data_dir = cfg.data or None
train = load_images(cfg.dataset, data_dir, "train", seed=cfg.seed,
                    n_procedural=cfg.n_train or None)
test = load_images(cfg.dataset, data_dir, "test", seed=cfg.seed,
                   n_procedural=cfg.n_test or None)
x_train = to_float(train.images[:cfg.n_train or None])   # float32 [N, 1, 28, 28] in [0, 1]
x_test = to_float(test.images[:cfg.n_test or None])
if 0 < len(x_train) % cfg.batch_size < dist.get_world_size():
    raise SystemExit(f"demos/vae.py: the last batch of an epoch ({len(x_train) % cfg.batch_size}"
                     f" images) has fewer images than the {dist.get_world_size()} processes: "
                     "change --batch_size or --n_train")
print(f"data: {train.source}; {len(x_train):,} train and {len(x_test):,} test images "
      f"{x_train.shape[1:]}")

# ---- model and optimizer ------------------------------------------------------------------
model_config = VAEConfig(model=cfg.model, image_size=x_train.shape[-1],
                         in_channels=x_train.shape[1], n_latent=cfg.n_latent)
model = build_vae(model_config)
model.to(cfg.device)
optimizer = optim.Adam(model.parameters(), lr=cfg.learning_rate)
ddp = dist.DistributedDataParallel(model)  # averages the gradients over ranks
print(f"{cfg.model} VAE: {model.num_parameters():,} parameters on {cfg.device}")


# the images go to the device once (MNIST: 190 MB as float32); batches are gathered there
train_images = tg.tensor(x_train, device=cfg.device)
test_images = tg.tensor(x_test, device=cfg.device)


def batch(images, idx):
    return images[idx]


@tg.no_grad()
def evaluate(images):
    """Negative ELBO on `images` in nats per image, and its two terms (one z per image)."""
    nll = kl = 0.0
    with model.evaluating():
        for idx in iterate_minibatches(len(images), 1000, shuffle=False):
            x = batch(images, idx)
            logits, mu, logvar = model(x)
            nll = nll + bernoulli_nll(logits, x).sum()   # sums stay on the device
            kl = kl + gaussian_kl(mu, logvar).sum()
    nll, kl, n = float(nll.item()), float(kl.item()), len(images)
    return {"neg_elbo": (nll + kl) / n, "recon": nll / n, "kl": kl / n}


# ---- training loop ------------------------------------------------------------------------
# The loss is the negative ELBO (tinygen.models.vae): Bernoulli reconstruction error summed
# over the pixels plus the KL divergence of q(z|x) from the prior, in nats per image.
t_start = time.time()
train_time, step, epoch_losses, step_losses = 0.0, 0, [], []
for epoch in range(1, cfg.epochs + 1):
    t0, total, pending = time.time(), 0.0, []  # pending: (loss on the device, batch size)
    batches = list(iterate_minibatches(len(x_train), cfg.batch_size, order_rng))
    for i, idx in enumerate(batches):
        x = batch(train_images, idx)                                  # the global batch
        eps = generator(cfg.device).standard_normal((len(idx), cfg.n_latent), dtype=np.float32)
        (x, weight), (eps, _) = dist.local_share(x), dist.local_share(eps)  # this rank's rows
        loss = model.neg_elbo(x, eps) * weight  # weight: the last batch may split unevenly
        optimizer.zero_grad()
        loss.backward()
        ddp.sync_gradients()
        optimizer.step()
        pending.append((loss.detach(), len(idx)))
        step += 1
        if (step - 1) % cfg.log_interval and i + 1 < len(batches):
            continue  # no host sync: the losses are read once per log interval
        values = tg.stack([v for v, _ in pending]).numpy().astype(np.float64)  # waits for GPU
        values = dist.all_reduce(values, dist.ReduceOp.AVG).tolist()  # the global batch's
        if not all(math.isfinite(v) for v in values):
            raise FloatingPointError(f"the training loss became {values[-1]} by step "
                                     f"{step - 1} (epoch {epoch}); stopping")
        total += sum(v * n for v, (_, n) in zip(values, pending))
        step_losses += values
        pending = []
        if (step - 1) % cfg.log_interval == 0:
            print(f"epoch {epoch} step {step - 1}: -ELBO {values[-1]:.2f} nats/image")
    train_time += time.time() - t0  # honest: the last read waited for the GPU
    epoch_losses.append(total / len(x_train))
    print(f"epoch {epoch}: train -ELBO {epoch_losses[-1]:.3f}, "
          f"{time.time() - t0:.1f}s ({len(x_train) / (time.time() - t0):,.0f} images/s)")

if not dist.is_main_process():
    sys.exit(0)
test_result = evaluate(test_images)
print(f"test -ELBO {test_result['neg_elbo']:.3f} nats/image = reconstruction "
      f"{test_result['recon']:.3f} + KL {test_result['kl']:.3f}")

# ---- pictures -----------------------------------------------------------------------------
pngs = {name: os.path.join(cfg.out_dir, f"{name}.png")
        for name in ("samples", "reconstructions", "interpolations", "loss")}
samples = model.sample(64).numpy()                                   # [64, 1, 28, 28]
write_png(pngs["samples"], image_grid(samples, nrow=8, pad_value=0.5))

originals = x_test[:8]
recons = model.reconstruct(batch(test_images, np.arange(8))).numpy()
write_png(pngs["reconstructions"],
          image_grid(np.concatenate([originals, recons]), nrow=8, pad_value=0.5))

k, steps = cfg.n_interpolations, cfg.interpolation_steps
pairs = order_rng.choice(len(x_test), size=(2, k), replace=False)   # k pairs of test images
walks = model.interpolate(batch(test_images, pairs[0]), batch(test_images, pairs[1]), steps)
write_png(pngs["interpolations"],                                    # [k, steps, 1, 28, 28]
          image_grid(walks.numpy().reshape(k * steps, *x_test.shape[1:]), nrow=steps,
                     pad_value=0.5))
print("wrote " + ", ".join(list(pngs.values())[:3]))

summary = {
    "test_neg_elbo_nats": round(test_result["neg_elbo"], 3),
    "test_recon_nats": round(test_result["recon"], 3),
    "test_kl_nats": round(test_result["kl"], 3),
    "train_neg_elbo_nats": round(epoch_losses[-1], 3),
    "train_neg_elbo_by_epoch": [round(v, 3) for v in epoch_losses],
    "epochs": cfg.epochs, "steps": step,
    "seconds": round(time.time() - t_start, 1), "train_seconds": round(train_time, 1),
    "seconds_per_epoch": round(train_time / max(cfg.epochs, 1), 2),
    "images_per_s": round(cfg.epochs * len(x_train) / max(train_time, 1e-9), 1),
    "world_size": dist.get_world_size(),
    "model": cfg.model, "params": model.num_parameters(), "n_latent": cfg.n_latent,
    "data": train.source, "n_train": len(x_train), "n_test": len(x_test),
    "device": cfg.device, "seed": cfg.seed, "pngs": pngs,
}
save_curves(pngs["loss"], {"training -ELBO (nats per image)": step_losses},
            title="VAE training loss")
write_summary(cfg.out_dir, summary)

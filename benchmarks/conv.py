"""Convolutional training steps in tinygen and PyTorch, side by side.

Two workloads on 28x28 single-channel images (the MNIST layout):
  dcgan       the DCGAN of tinygen.models.gan (conv / transposed conv / batch norm): one
              D step on real and generated images, then one G step, each with Adam
  classifier  three 3x3 convs (the last two with stride 2) and a linear layer: forward,
              cross-entropy, backward, Adam
The models are written once, against the shared PyTorch-style API, and built from both
`tinygen.nn` and `torch.nn`; both start from the same weights and see the same batches.
Libraries alternate for a few rounds so machine noise hits both alike; prints the best
median ms/iter of each, the first loss (they must agree) and the tinygen/PyTorch ratio.

    python benchmarks/conv.py [--batch 64] [--iters 15] [--rounds 3] [--device cpu]
    OPENBLAS_NUM_THREADS=1 python benchmarks/conv.py     # both libraries on one thread
"""

import argparse

import numpy as np
from common import add_arguments, compare, copy_weights, torch

import tinygen as tg
import tinygen.nn.functional as tF
from tinygen import nn as tnn
from tinygen import optim as toptim

Z = 64  # noise size


def dcgan(nn):
    """Generator and discriminator of tinygen.models.gan's DCGAN (ngf = ndf = 64)."""
    G = nn.Sequential(
        nn.Linear(Z, 128 * 7 * 7, bias=False), nn.BatchNorm1d(128 * 7 * 7), nn.ReLU(),
        nn.Unflatten(1, (128, 7, 7)),                                  # [N, 128, 7, 7]
        nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1, bias=False),  # [N, 64, 14, 14]
        nn.BatchNorm2d(64), nn.ReLU(),
        nn.ConvTranspose2d(64, 1, 4, stride=2, padding=1), nn.Tanh())  # [N, 1, 28, 28]
    D = nn.Sequential(
        nn.Conv2d(1, 64, 4, stride=2, padding=1), nn.LeakyReLU(0.2),    # [N, 64, 14, 14]
        nn.Conv2d(64, 128, 4, stride=2, padding=1, bias=False),        # [N, 128, 7, 7]
        nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(128 * 7 * 7, 1))                       # [N, 1] logits
    return G, D


def classifier(nn):
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),                     # [N, 32, 28, 28]
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),          # [N, 64, 14, 14]
        nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU(),          # [N, 64, 7, 7]
        nn.Flatten(), nn.Linear(64 * 7 * 7, 10))


def workloads(lib, args, seed=0):
    """name -> (step function, models) for `lib` ("tinygen" or "torch"). The weights are
    tinygen's (seeded), copied into PyTorch's models, so both start from the same point."""
    batch, device = args.batch, args.device
    tg.manual_seed(seed)
    ours = {"dcgan": dcgan(tnn), "classifier": (classifier(tnn),)}
    rng = np.random.default_rng(seed)
    real = rng.uniform(-1, 1, (batch, 1, 28, 28)).astype(np.float32)
    z = rng.standard_normal((batch, Z), dtype=np.float32)
    labels = rng.integers(0, 10, batch)
    if lib == "tinygen":
        nn, F, optim, models = tnn, tF, toptim, ours
        for ms in models.values():
            for m in ms:
                m.to(device)

        def tensor(a):
            return tg.tensor(a, device=device)
    else:
        nn, F, optim = torch.nn, torch.nn.functional, torch.optim
        models = {name: (dcgan(nn) if name == "dcgan" else (classifier(nn),))
                  for name in ours}
        for name, ms in models.items():
            for m, twin in zip(ms, ours[name]):
                copy_weights(m, twin).to(device)

        def tensor(a):
            return torch.from_numpy(a).to(device)

    real, z, labels = tensor(real), tensor(z), tensor(labels)
    ones, zeros = tensor(np.ones((batch, 1), np.float32)), tensor(np.zeros((batch, 1), np.float32))
    G, D = models["dcgan"]
    (C,) = models["classifier"]
    opt_g = optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_c = optim.Adam(C.parameters(), lr=1e-3)
    bce = F.binary_cross_entropy_with_logits

    def gan_step():  # tinygen.models.gan.train_step, written against either library
        fake = G(z)
        d_loss = bce(D(real), ones) + bce(D(fake.detach()), zeros)
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = bce(D(fake), ones)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        return d_loss.item()

    def classifier_step():
        loss = F.cross_entropy(C(real), labels)
        opt_c.zero_grad()
        loss.backward()
        opt_c.step()
        return loss.item()

    return {"dcgan": gan_step, "classifier": classifier_step}


def main():
    parser = add_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]), 64)
    compare(workloads, ("dcgan", "classifier"), parser.parse_args())


if __name__ == "__main__":
    main()

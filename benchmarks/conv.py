"""Convolutional training steps in tinygen and PyTorch, side by side.

Two workloads on 28x28 single-channel images (the MNIST layout), one on 3x32x32 (CIFAR's):
  dcgan       the DCGAN of tinygen.models.gan (conv / transposed conv / batch norm): one
              D step on real and generated images, then one G step, each with Adam
  classifier  three 3x3 convs (the last two with stride 2) and a linear layer: forward,
              cross-entropy, backward, Adam
  resnet      a small residual net (He et al. 2016, the CIFAR layout): a 3x3 stem, then
              three stages of one basic block each (two 3x3 conv + BatchNorm, a residual
              add; 16, 32, 64 channels, the last two stages with stride 2 and a 1x1
              projection shortcut), global mean, linear: forward, cross-entropy, backward,
              SGD with momentum
The models are written once, against the shared PyTorch-style API, and built from both
`tinygen.nn` and `torch.nn`; both start from the same weights and see the same batches.
Libraries alternate for a few rounds so machine noise hits both alike; prints the best
median ms/iter of each, the first loss (they must agree) and the tinygen/PyTorch ratio.
Last, one more tinygen run per workload with its matrix products timed: their share of the
step, their GFLOP/s, and how they compare with PyTorch's whole step (common.py:
print_products_floor), the floor under the ratio that no elementwise work lowers.

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


def resnet(nn):
    """3x32x32 -> 10 logits; written once against either library's nn."""

    class BasicBlock(nn.Module):
        """relu(bn(conv(relu(bn(conv(x))))) + shortcut(x)), He et al. 2016, figure 2."""

        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out)
            self.relu = nn.ReLU()
            self.shortcut = nn.Sequential()   # identity, or a 1x1 projection when shapes change
            if stride != 1 or c_in != c_out:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False),
                                      nn.BatchNorm2d(16), nn.ReLU())          # [N, 16, 32, 32]
            self.stages = nn.Sequential(BasicBlock(16, 16, 1),                # [N, 16, 32, 32]
                                        BasicBlock(16, 32, 2),                # [N, 32, 16, 16]
                                        BasicBlock(32, 64, 2))                # [N, 64, 8, 8]
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            return self.fc(self.stages(self.stem(x)).mean((2, 3)))           # global mean

    return ResNet()


def workloads(lib, args, seed=0):
    """name -> (step function, models) for `lib` ("tinygen" or "torch"). The weights are
    tinygen's (seeded), copied into PyTorch's models, so both start from the same point."""
    batch, device = args.batch, args.device
    tg.manual_seed(seed)
    ours = {"dcgan": dcgan(tnn), "classifier": (classifier(tnn),), "resnet": (resnet(tnn),)}
    rng = np.random.default_rng(seed)
    real = rng.uniform(-1, 1, (batch, 1, 28, 28)).astype(np.float32)
    z = rng.standard_normal((batch, Z), dtype=np.float32)
    labels = rng.integers(0, 10, batch)
    cifar = rng.uniform(-1, 1, (batch, 3, 32, 32)).astype(np.float32)  # drawn last: the
    # other workloads see the batches they saw before the residual net was added
    if lib == "tinygen":
        nn, F, optim, models = tnn, tF, toptim, ours
        for ms in models.values():
            for m in ms:
                m.to(device)

        def tensor(a):
            return tg.tensor(a, device=device)
    else:
        nn, F, optim = torch.nn, torch.nn.functional, torch.optim
        models = {"dcgan": dcgan(nn), "classifier": (classifier(nn),), "resnet": (resnet(nn),)}
        for name, ms in models.items():
            for m, twin in zip(ms, ours[name]):
                copy_weights(m, twin).to(device)

        def tensor(a):
            return torch.from_numpy(a).to(device)

    real, z, labels, cifar = tensor(real), tensor(z), tensor(labels), tensor(cifar)
    ones, zeros = tensor(np.ones((batch, 1), np.float32)), tensor(np.zeros((batch, 1), np.float32))
    G, D = models["dcgan"]
    (C,), (R,) = models["classifier"], models["resnet"]
    opt_g = optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_c = optim.Adam(C.parameters(), lr=1e-3)
    opt_r = optim.SGD(R.parameters(), lr=0.1, momentum=0.9)
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

    def resnet_step():
        loss = F.cross_entropy(R(cifar), labels)
        opt_r.zero_grad()
        loss.backward()
        opt_r.step()
        return loss.item()

    return {"dcgan": gan_step, "classifier": classifier_step, "resnet": resnet_step}


def main():
    parser = add_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]), 64)
    compare(workloads, ("dcgan", "classifier", "resnet"), parser.parse_args(),
            floor=[(64, 576, 16384), (128, 1024, 3136)])  # [C_out, C_in·k·k] @ [., B·H·W]


if __name__ == "__main__":
    main()

"""PyTorch twins of tinygen.models.vae, used by benchmarks/vae.py to train the same model
in both libraries. TorchMLPVAE is PyTorch's examples/vae/main.py (784-400-20) with the same
names; TorchConvVAE mirrors tinygen's ConvVAE layer for layer. Both return logits, and
`neg_elbo` is the same loss as tinygen's: Bernoulli NLL summed over pixels + closed-form KL,
averaged over images."""

import torch
import torch.nn.functional as F
from torch import nn


class TorchMLPVAE(nn.Module):
    def __init__(self, n_pixels=784, n_hidden=400, n_latent=20, image_shape=(1, 28, 28)):
        super().__init__()
        self.image_shape = image_shape
        self.fc1 = nn.Linear(n_pixels, n_hidden)
        self.fc21 = nn.Linear(n_hidden, n_latent)
        self.fc22 = nn.Linear(n_hidden, n_latent)
        self.fc3 = nn.Linear(n_latent, n_hidden)
        self.fc4 = nn.Linear(n_hidden, n_pixels)

    def encode(self, x):
        h1 = F.relu(self.fc1(x.flatten(1)))
        return self.fc21(h1), self.fc22(h1)

    def decode(self, z):
        return self.fc4(F.relu(self.fc3(z))).view(-1, *self.image_shape)


class TorchConvVAE(nn.Module):
    def __init__(self, in_channels=1, image_size=28, n_latent=20, n_channels=32):
        super().__init__()
        ch = n_channels
        self.feature_shape = (2 * ch, image_size // 4, image_size // 4)
        n_features = 2 * ch * (image_size // 4) ** 2
        self.conv1 = nn.Conv2d(in_channels, ch, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(ch, 2 * ch, 4, stride=2, padding=1)
        self.fc21 = nn.Linear(n_features, n_latent)
        self.fc22 = nn.Linear(n_features, n_latent)
        self.fc3 = nn.Linear(n_latent, n_features)
        self.deconv1 = nn.ConvTranspose2d(2 * ch, ch, 4, stride=2, padding=1)
        self.deconv2 = nn.ConvTranspose2d(ch, in_channels, 4, stride=2, padding=1)

    def encode(self, x):
        h = F.relu(self.conv2(F.relu(self.conv1(x)))).flatten(1)
        return self.fc21(h), self.fc22(h)

    def decode(self, z):
        h = F.relu(self.fc3(z)).view(-1, *self.feature_shape)
        return self.deconv2(F.relu(self.deconv1(h)))


def neg_elbo(model, x):
    """One-sample negative ELBO in nats per image (the examples' loss_function / batch)."""
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    logits = model.decode(z)
    nll = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return (nll + kl) / x.shape[0]

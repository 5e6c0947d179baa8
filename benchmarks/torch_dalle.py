"""The PyTorch twin of tinygen.models.dalle.VQVAE (same names and shapes, so tinygen's
weights load into it), used by benchmarks/dalle.py. The prior is torch_gpt.TorchGPT."""

import torch
import torch.nn.functional as F
from torch import nn


class TorchVQVAE(nn.Module):
    def __init__(self, in_channels=3, hidden=64, n_codes=128, code_dim=32, beta=0.25):
        super().__init__()
        self.beta = beta
        self.enc1 = nn.Conv2d(in_channels, hidden, 4, stride=2, padding=1)
        self.enc2 = nn.Conv2d(hidden, hidden, 4, stride=2, padding=1)
        self.enc3 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.enc4 = nn.Conv2d(hidden, code_dim, 1)
        self.quantizer = nn.Module()
        self.quantizer.codebook = nn.Embedding(n_codes, code_dim)
        self.dec1 = nn.Conv2d(code_dim, hidden, 3, padding=1)
        self.dec2 = nn.ConvTranspose2d(hidden, hidden, 4, stride=2, padding=1)
        self.dec3 = nn.ConvTranspose2d(hidden, in_channels, 4, stride=2, padding=1)

    def forward(self, x):
        """The training loss: pixel MSE + codebook loss + beta * commitment loss, with the
        straight-through estimator (VQVAE.forward in tinygen)."""
        z_e = self.enc4(F.relu(self.enc3(F.relu(self.enc2(F.relu(self.enc1(x)))))))
        B, D, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(B * h * w, D)
        e = self.quantizer.codebook.weight
        with torch.no_grad():
            codes = (-2.0 * flat @ e.T + (e * e).sum(1)).argmin(1)
        z_q = self.quantizer.codebook(codes)
        vq_loss = F.mse_loss(z_q, flat.detach()) + self.beta * F.mse_loss(flat, z_q.detach())
        z_st = (flat + (z_q - flat).detach()).reshape(B, h, w, D).permute(0, 3, 1, 2)
        recon = self.dec3(F.relu(self.dec2(F.relu(self.dec1(z_st)))))
        return F.mse_loss(recon, x) + vq_loss

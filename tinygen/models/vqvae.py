"""A VQ-VAE (van den Oord et al. 2017, "Neural Discrete Representation Learning"): the
discrete image tokenizer of the DALL·E-style model in models/dalle.py.

A conv encoder turns a 32x32 image into an 8x8 grid of vectors; each vector is replaced by
its nearest entry of a learned codebook, and a conv decoder draws the image back from those
entries. The image is now 64 integers ("image tokens"). (DALL·E itself uses a dVAE with a
Gumbel-softmax relaxation; the VQ-VAE is its simpler ancestor with the same interface:
image <-> grid of code ids.)

Read in order: the vector quantizer (the straight-through estimator, the codebook and
commitment losses, and the two remedies for codebook collapse), its config, the VQ-VAE, and
two measures of how well the codebook is used.
Shapes: B batch, D code_dim, h x w the token grid, K n_codes, N = B h w vectors.
"""

import math
from dataclasses import dataclass

import numpy as np

from tinygen import nn
from tinygen.autograd import no_grad
from tinygen.backend import get_array_module, index_add, to_device, to_numpy
from tinygen.checks import check_nonnegative, check_positive
from tinygen.creation import as_tensor
from tinygen.nn import functional as F
from tinygen.tensor import Tensor


# ---- vector quantization --------------------------------------------------------------------
class VectorQuantizer(nn.Module):
    """Replace each D-vector of z_e [B, D, h, w] by its nearest of K codebook vectors.

    Rounding to the nearest code has no gradient, so the paper trains the three parts with
    three terms (its eq. 3), all returned by forward:
      - straight-through: the decoder gets z_q, but in the backward pass the encoder gets
        the decoder's gradient as if z_q were z_e:  z_st = z_e + (z_q - z_e).detach();
      - codebook loss ||sg[z_e] - e||^2 moves each chosen code towards the encoder outputs
        it was picked for (k-means in the limit);
      - commitment loss beta * ||z_e - sg[e]||^2 keeps the encoder near the codes it picks,
        so its outputs do not drift away from the codebook.
    (sg = stop-gradient = .detach(); the squared norms are averaged, as in mse_loss.)

    Codebook collapse: codes that no encoder output is ever nearest to get no gradient and
    stay unused forever. Two remedies, both here: `init_from` starts the codebook with
    k-means on real encoder outputs (so every code starts where the data is), and
    `restart_dead_codes` moves codes that went unused for a while onto random encoder outputs
    of the current batch (the "random restarts" of Dhariwal et al. 2020, Jukebox).
    """

    def __init__(self, n_codes, code_dim, beta=0.25):
        self.codebook = nn.Embedding(n_codes, code_dim)  # weight [K, D]
        nn.init.uniform_(self.codebook.weight, -1.0 / n_codes, 1.0 / n_codes)
        self.n_codes, self.code_dim, self.beta = n_codes, code_dim, beta
        self.counts = np.zeros(n_codes, np.int64)  # uses since the last restart check

    def nearest(self, flat):
        """Index of the nearest code for each row of flat [N, D] -> int Tensor [N].
        ||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2, and ||z||^2 is the same for every code."""
        return Tensor(self._nearest(as_tensor(flat).data))

    def _nearest(self, flat):
        e = self.codebook.weight.data                                  # [K, D]
        dist = -2.0 * flat @ e.T + (e * e).sum(axis=1)                 # [N, K]
        return dist.argmin(axis=1)

    def forward(self, z_e):
        """z_e [B, D, h, w] -> (z_st [B, D, h, w], codes int Tensor [B, h, w], vq_loss)."""
        B, D, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(B * h * w, D)           # [N, D], one per cell
        codes = self._nearest(flat.data)                               # [N]
        if self.training:
            xp = get_array_module(codes)
            self.counts += to_numpy(xp.bincount(codes, minlength=self.n_codes))
        z_q = self.codebook(codes)                                     # [N, D], grads to codes
        codebook_loss = F.mse_loss(z_q, flat.detach())
        commitment_loss = F.mse_loss(flat, z_q.detach())
        z_st = flat + (z_q - flat).detach()                            # straight-through
        z_st = z_st.reshape(B, h, w, D).permute(0, 3, 1, 2)
        return z_st, Tensor(codes.reshape(B, h, w)), codebook_loss + self.beta * commitment_loss

    def lookup(self, codes):
        """codes int [B, h, w] -> the code vectors z_q [B, D, h, w] (for decoding tokens)."""
        codes = as_tensor(codes, device=self.codebook.weight.device).data
        B, h, w = codes.shape
        z_q = self.codebook(codes.reshape(-1))                         # [B*h*w, D]
        return z_q.reshape(B, h, w, self.code_dim).permute(0, 3, 1, 2)

    @no_grad()
    def init_from(self, flat, iters=10, seed=0):
        """k-means initialisation: the codebook becomes the K centroids of Lloyd's algorithm
        on encoder outputs flat [N, D] (N >= K), seeded by k-means++ (Arthur &
        Vassilvitskii 2007: each next seed is a row drawn with probability proportional to
        its squared distance from the seeds so far, so clusters are rarely seeded twice)."""
        flat = as_tensor(flat, device=self.codebook.weight.device).data
        xp = get_array_module(flat)
        rng = np.random.default_rng(seed)
        seeds = [int(rng.integers(len(flat)))]
        d2 = ((flat - flat[seeds[0]]) ** 2).sum(axis=1)                # [N]
        for _ in range(self.n_codes - 1):
            p = to_numpy(d2).astype(np.float64)
            seeds.append(int(rng.choice(len(flat), p=p / p.sum())) if p.sum() > 0
                         else int(rng.integers(len(flat))))
            d2 = xp.minimum(d2, ((flat - flat[seeds[-1]]) ** 2).sum(axis=1))
        centroids = flat[to_device(np.array(seeds), self.codebook.weight.device)].copy()
        for _ in range(iters):
            self.codebook.weight.data[...] = centroids
            assign = self._nearest(flat)
            sums = index_add(xp.zeros_like(centroids), assign, flat)
            n = xp.bincount(assign, minlength=self.n_codes)[:, None]
            # an empty cluster keeps its old centroid
            centroids = xp.where(n > 0, sums / xp.maximum(n, 1), centroids)
        self.codebook.weight.data[...] = centroids

    @no_grad()
    def restart_dead_codes(self, flat, seed=None):
        """Move every code unused since the last call onto a random row of flat [N, D] (this
        batch's encoder outputs); reset the counts. Returns how many moved."""
        flat = as_tensor(flat, device=self.codebook.weight.device).data
        dead = np.flatnonzero(self.counts == 0)
        if len(dead):
            rng = np.random.default_rng(seed)
            rows = to_device(rng.choice(len(flat), len(dead), replace=len(dead) > len(flat)),
                             self.codebook.weight.device)
            self.codebook.weight.data[to_device(dead, self.codebook.weight.device)] = flat[rows]
        self.counts[:] = 0
        return len(dead)


@dataclass
class VQVAEConfig:
    image_size: int = 32     # square RGB images [B, 3, S, S] in [0, 1]
    in_channels: int = 3
    hidden: int = 64         # channels of the conv layers
    n_codes: int = 128       # K: the codebook size, i.e. the image-token vocabulary
    code_dim: int = 32       # D: length of each code vector
    beta: float = 0.25       # weight of the commitment loss (the paper's value)

    def __post_init__(self):
        check_positive(self, "image_size", "in_channels", "hidden", "n_codes", "code_dim")
        check_nonnegative(self, "beta")
        if self.image_size % 4:
            raise ValueError(f"image_size={self.image_size!r}: must be a multiple of 4 "
                             f"(two stride-2 convolutions)")


class VQVAE(nn.Module):
    """Encoder and decoder mirror each other; two stride-2 convolutions make the token grid
    4x smaller than the image on each side (32x32 -> 8x8 = 64 tokens):

        encoder  [B, 3, 32, 32] -4x4/2-> [B, hidden, 16, 16] -4x4/2-> [B, hidden, 8, 8]
                 -3x3-> [B, hidden, 8, 8] -1x1-> z_e [B, D, 8, 8]        (ReLU between)
        quantize z_e -> nearest codes -> z_q [B, D, 8, 8]
        decoder  z_q -3x3-> [B, hidden, 8, 8] -4x4/2 transposed-> [B, hidden, 16, 16]
                 -4x4/2 transposed-> [B, 3, 32, 32] pixels

    A token sees a 4x4-pixel cell (plus context from the 3x3 layers): a piece of one edge
    of one colour, so a shape never seen in some colour can still be drawn from its parts.
    The reconstruction loss is the mean squared error of the pixels.
    """

    def __init__(self, config=None):
        self.config = c = config or VQVAEConfig()
        if c.image_size % 4:
            raise ValueError(f"VQVAE: image_size must be a multiple of 4, got {c.image_size}")
        self.grid = c.image_size // 4                                  # h = w = 8
        self.enc1 = nn.Conv2d(c.in_channels, c.hidden, 4, stride=2, padding=1)
        self.enc2 = nn.Conv2d(c.hidden, c.hidden, 4, stride=2, padding=1)
        self.enc3 = nn.Conv2d(c.hidden, c.hidden, 3, padding=1)
        self.enc4 = nn.Conv2d(c.hidden, c.code_dim, 1)
        self.quantizer = VectorQuantizer(c.n_codes, c.code_dim, c.beta)
        self.dec1 = nn.Conv2d(c.code_dim, c.hidden, 3, padding=1)
        self.dec2 = nn.ConvTranspose2d(c.hidden, c.hidden, 4, stride=2, padding=1)
        self.dec3 = nn.ConvTranspose2d(c.hidden, c.in_channels, 4, stride=2, padding=1)

    def encode(self, x):
        """images [B, 3, S, S] -> z_e [B, D, S/4, S/4], before quantization."""
        x = as_tensor(x, device=self.enc1.weight.device)
        h = F.relu(self.enc2(F.relu(self.enc1(x))))
        return self.enc4(F.relu(self.enc3(h)))

    def decode(self, z_q):
        """code vectors [B, D, h, w] -> images [B, 3, S, S]."""
        return self.dec3(F.relu(self.dec2(F.relu(self.dec1(z_q)))))

    def forward(self, x):
        """images [B, 3, S, S] -> (reconstructions, codes int [B, h, w], loss): loss is the
        reconstruction MSE plus the quantizer's codebook and commitment terms."""
        x = as_tensor(x, device=self.enc1.weight.device)
        z_st, codes, vq_loss = self.quantizer(self.encode(x))
        recon = self.decode(z_st)
        return recon, codes, F.mse_loss(recon, x.to(recon.device)) + vq_loss

    @no_grad()
    def tokenize(self, images, batch_size=500):
        """images [N, 3, S, S] -> image tokens, an int Tensor [N, h * w] in raster order on
        the model's device (what detokenize takes)."""
        xp = get_array_module(self.enc1.weight.data)
        out = []
        for i in range(0, len(images), batch_size):
            z_e = self.encode(images[i:i + batch_size])
            B, D, h, w = z_e.shape
            flat = z_e.permute(0, 2, 3, 1).reshape(B * h * w, D).data
            out.append(self.quantizer._nearest(flat).reshape(B, h * w))
        return Tensor(xp.concatenate(out))

    @no_grad()
    def detokenize(self, tokens):
        """image tokens int [N, h * w] -> images [N, 3, S, S] in [0, 1] (a Tensor)."""
        tokens = as_tensor(tokens, device=self.enc1.weight.device)
        z_q = self.quantizer.lookup(tokens.reshape(len(tokens), self.grid, self.grid))
        return self.decode(z_q).clip(0.0, 1.0)



# ---- codebook use ----------------------------------------------------------------------------
def codebook_usage(tokens, n_codes):
    """Share of the K codes that occur at least once among image tokens (any shape)."""
    return len(np.unique(as_tensor(tokens).numpy())) / n_codes


def perplexity(tokens, n_codes):
    """exp(entropy) of the codes' frequencies: the number of equally used codes that would
    give the same spread (K when all are used equally, 1 when one code does everything)."""
    tokens = as_tensor(tokens).numpy().reshape(-1)
    p = np.bincount(tokens, minlength=n_codes) / tokens.size
    p = p[p > 0]
    return float(math.exp(-(p * np.log(p)).sum()))


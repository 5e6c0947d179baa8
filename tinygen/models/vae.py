"""VAE: the variational autoencoder of Kingma & Welling, "Auto-Encoding Variational Bayes"
(2014), with a Bernoulli decoder for images whose pixels lie in [0, 1].

An encoder q(z|x) = N(mu, diag(exp(logvar))) maps an image to a Gaussian over a small
latent code z; a decoder p(x|z) gives one Bernoulli logit per pixel; the prior p(z) is
N(0, I). Training maximises the evidence lower bound (ELBO) on log p(x),

    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z))                       (paper, eq. 3)

estimated with one sample z = mu + sigma * eps, eps ~ N(0, I): the reparameterisation trick
(section 2.4) that makes the sample a differentiable function of mu and logvar. The loss is
the negative ELBO in nats per image, an upper bound on -log p(x).

Read in order: the loss terms, the shared VAE base class (encode/decode left to
subclasses), MLPVAE (PyTorch's examples/vae, parameter for parameter), ConvVAE.
Shapes: B batch, C channels, H, W image size, D = C*H*W pixels, Z latent dimensions.
"""

from dataclasses import dataclass

import numpy as np

from tinygen import nn
from tinygen.autograd import no_grad
from tinygen.checks import check_choice, check_positive
from tinygen.creation import randn, tensor
from tinygen.nn import functional as F
from tinygen.random import generator


# ---- the loss -------------------------------------------------------------------------------
def reparameterize(mu, logvar, eps=None):
    """z = mu + exp(logvar / 2) * eps with eps ~ N(0, I) [B, Z]: a sample from
    N(mu, exp(logvar)) through which gradients flow to mu and logvar (the noise is an input,
    not a node of the graph). Pass `eps` to fix the noise (for tests)."""
    if eps is None:
        eps = generator(mu.device).standard_normal(mu.shape, dtype=mu.dtype)
    return mu + (logvar * 0.5).exp() * eps


def gaussian_kl(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, I)) per image, in closed form (paper, appendix B):
    -1/2 sum_j (1 + logvar_j - mu_j^2 - exp(logvar_j)).   [B, Z] -> [B]"""
    return ((mu * mu + logvar.exp() - logvar - 1.0) * 0.5).sum(axis=1)


def bernoulli_nll(logits, x):
    """-log p(x|z) per image for a Bernoulli decoder: the binary cross-entropy summed over
    pixels. x may be grey levels in [0, 1] rather than 0/1, as PyTorch's example uses it.
    [B, C, H, W] logits and targets -> [B]"""
    if logits.shape != x.shape:
        raise ValueError(f"bernoulli_nll: logits {logits.shape} and images {x.shape} must "
                         "have the same shape")
    B = logits.shape[0]
    bce = F.binary_cross_entropy_with_logits(logits.reshape(B, -1), x.reshape(B, -1),
                                             reduction="none")   # [B, D]
    return bce.sum(axis=1)


def neg_elbo(logits, x, mu, logvar):
    """The negative ELBO in nats per image, averaged over the batch: reconstruction
    (Bernoulli negative log-likelihood, summed over pixels) + KL to the prior."""
    return (bernoulli_nll(logits, x) + gaussian_kl(mu, logvar)).mean()


# ---- what every VAE does --------------------------------------------------------------------
@dataclass
class VAEConfig:
    model: str = "mlp"       # mlp (PyTorch's examples/vae) | conv
    image_size: int = 28     # H = W of the (square) images
    in_channels: int = 1     # C: 1 for grey images
    n_latent: int = 20       # Z: dimensions of the latent code
    n_hidden: int = 400      # MLP: width of the hidden layer on each side
    n_channels: int = 32     # conv: channels of the first convolution (the second has twice)

    def __post_init__(self):
        check_choice(self, "model", ("mlp", "conv"))
        check_positive(self, "image_size", "in_channels", "n_latent", "n_hidden", "n_channels")
        if self.model == "conv" and self.image_size % 4:
            raise ValueError(f"image_size={self.image_size!r}: must be a multiple of 4 for "
                             f"model='conv' (two stride-2 convolutions)")


class VAE(nn.Module):
    """The parts that do not depend on the networks. A subclass defines
    encode(x [B, C, H, W]) -> (mu, logvar) [B, Z] and decode(z [B, Z]) -> logits [B, C, H, W]."""

    def check_images(self, x):
        """A clear error for a batch that is not [B, C, H, W] of this model's size."""
        c = self.config
        want = (c.in_channels, c.image_size, c.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(f"{type(self).__name__}: expects images [B, {want[0]}, {want[1]}, "
                             f"{want[2]}], got shape {tuple(x.shape)}")

    def forward(self, x, eps=None):
        """Encode, draw one z, decode: (logits [B, C, H, W], mu [B, Z], logvar [B, Z]).
        z is drawn in eval mode too, so a test loss is the same one-sample estimate of the
        negative ELBO as the training loss (as in PyTorch's example). eps [B, Z]: the
        noise, drawn here when None."""
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, eps)
        return self.decode(z), mu, logvar

    def neg_elbo(self, x, eps=None):
        """The training loss: the negative ELBO of a batch x [B, C, H, W], nats per image."""
        logits, mu, logvar = self(x, eps)
        return neg_elbo(logits, x, mu, logvar)

    @no_grad()
    def sample(self, n):
        """n new images [n, C, H, W]: z ~ p(z) = N(0, I), decoded to pixel probabilities
        (the Bernoulli means, which is what VAE papers show, not 0/1 draws)."""
        z = randn(n, self.config.n_latent, device=self.parameters()[0].device)
        return self.decode(z).sigmoid()

    @no_grad()
    def reconstruct(self, x):
        """Pixel probabilities [B, C, H, W] decoded from each image's posterior mean mu
        (the most likely code, so the picture does not change from call to call)."""
        mu, _ = self.encode(x)
        return self.decode(mu).sigmoid()

    @no_grad()
    def interpolate(self, x_a, x_b, steps=8):
        """Walk in latent space from image x_a to image x_b: the posterior means mu_a, mu_b,
        the points (1 - t) mu_a + t mu_b for `steps` values of t from 0 to 1, each decoded.
        x_a, x_b [B, C, H, W] (pairs) or [C, H, W] -> [B, steps, C, H, W] or [steps, C, H, W].
        A straight line is the simplest path; White (2016, "Sampling Generative Networks")
        prefers a great circle (slerp), because halfway along a straight line between two
        typical codes of a high-dimensional Gaussian the norm is atypically small."""
        single = x_a.ndim == 3
        if single:
            x_a, x_b = x_a.unsqueeze(0), x_b.unsqueeze(0)
        mu_a, _ = self.encode(x_a)                                     # [B, Z]
        mu_b, _ = self.encode(x_b)
        B, Z = mu_a.shape
        t = tensor(np.linspace(0.0, 1.0, steps, dtype=np.float32), device=mu_a.device)
        t = t.reshape(1, steps, 1)                                     # [1, steps, 1]
        z = mu_a.unsqueeze(1) * (1.0 - t) + mu_b.unsqueeze(1) * t      # [B, steps, Z]
        images = self.decode(z.reshape(B * steps, Z)).sigmoid()        # [B*steps, C, H, W]
        images = images.reshape(B, steps, *images.shape[1:])
        return images[0] if single else images


# ---- the networks ---------------------------------------------------------------------------
class MLPVAE(VAE):
    """PyTorch's examples/vae/main.py, layer for layer and name for name (so state_dicts
    line up): encoder 784 -> 400 (ReLU) -> mu, logvar (20 each); decoder 20 -> 400 (ReLU)
    -> 784 Bernoulli logits. (The example applies a sigmoid and then binary_cross_entropy;
    keeping logits and using binary_cross_entropy_with_logits is the same loss, computed
    without ever taking the log of a probability that rounded to 0.)"""

    def __init__(self, config=None):
        self.config = config = config or VAEConfig(model="mlp")
        C, S = config.in_channels, config.image_size
        D, Z, n_hidden = C * S * S, config.n_latent, config.n_hidden
        self.fc1 = nn.Linear(D, n_hidden)
        self.fc21 = nn.Linear(n_hidden, Z)    # -> mu
        self.fc22 = nn.Linear(n_hidden, Z)    # -> logvar
        self.fc3 = nn.Linear(Z, n_hidden)
        self.fc4 = nn.Linear(n_hidden, D)

    def encode(self, x):
        self.check_images(x)
        h1 = F.relu(self.fc1(x.reshape(x.shape[0], -1)))   # [B, D] -> [B, n_hidden]
        return self.fc21(h1), self.fc22(h1)

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        C, S = self.config.in_channels, self.config.image_size
        return self.fc4(h3).reshape(z.shape[0], C, S, S)   # [B, D] -> [B, C, H, W]


class ConvVAE(VAE):
    """A convolutional VAE: the MLP's hidden layers replaced by two stride-2 convolutions
    on each side, a mirror image of each other (as in DCGAN, Radford et al. 2016):

        encoder  [B, 1, 28, 28] -conv1-> [B, 32, 14, 14] -conv2-> [B, 64, 7, 7]
                 -flatten-> [B, 3136] -fc21, fc22-> mu, logvar [B, 20]
        decoder  z [B, 20] -fc3-> [B, 3136] -> [B, 64, 7, 7] -deconv1-> [B, 32, 14, 14]
                 -deconv2-> [B, 1, 28, 28] logits                     (ReLU between layers)

    Why this shape: a convolution shares its weights across positions, so strokes and
    edges are learned once for the whole image, with 2.5x fewer parameters than the MLP.
    Stride 2 halves the resolution without pooling, and the transposed convolutions learn
    the way back up. Each kernel is 4x4 with padding 1: exactly halves/doubles 28 -> 14 -> 7,
    and since 4 is a multiple of the stride every output pixel gets the same number of kernel
    taps, which avoids the checkerboard artifacts of uneven overlap (Odena et al. 2016).
    The latent heads read the whole 7x7 feature map, so z can say where things are.
    """

    def __init__(self, config=None):
        self.config = config = config or VAEConfig(model="conv")
        C, S, Z, ch = config.in_channels, config.image_size, config.n_latent, config.n_channels
        if S % 4:
            raise ValueError(f"ConvVAE: image_size must be a multiple of 4 (two stride-2 "
                             f"halvings), got {S}")
        self.feature_shape = (2 * ch, S // 4, S // 4)                  # [64, 7, 7]
        n_features = 2 * ch * (S // 4) ** 2                            # 3136
        self.conv1 = nn.Conv2d(C, ch, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(ch, 2 * ch, 4, stride=2, padding=1)
        self.fc21 = nn.Linear(n_features, Z)  # -> mu
        self.fc22 = nn.Linear(n_features, Z)  # -> logvar
        self.fc3 = nn.Linear(Z, n_features)
        self.deconv1 = nn.ConvTranspose2d(2 * ch, ch, 4, stride=2, padding=1)
        self.deconv2 = nn.ConvTranspose2d(ch, C, 4, stride=2, padding=1)

    def encode(self, x):
        self.check_images(x)
        h = F.relu(self.conv1(x))                                      # [B, ch, S/2, S/2]
        h = F.relu(self.conv2(h))                                      # [B, 2ch, S/4, S/4]
        h = h.reshape(h.shape[0], -1)                                  # [B, n_features]
        return self.fc21(h), self.fc22(h)

    def decode(self, z):
        h = F.relu(self.fc3(z)).reshape(z.shape[0], *self.feature_shape)
        h = F.relu(self.deconv1(h))                                    # [B, ch, S/2, S/2]
        return self.deconv2(h)                                         # [B, C, S, S]


def build_vae(config):
    """MLPVAE or ConvVAE, as config.model says."""
    models = {"mlp": MLPVAE, "conv": ConvVAE}
    if config.model not in models:
        raise ValueError(f"build_vae: model must be one of {sorted(models)}, "
                         f"got {config.model!r}")
    return models[config.model](config)


"""GANs: generative adversarial networks (Goodfellow et al. 2014).

A generator G maps noise z ~ N(0, I) to samples; a discriminator D scores a sample with a
logit, high for "real". They play a game: D learns to tell data from G's samples, G learns
to fool D. Read in order: the losses, PacGAN packing, the MLPs for 2-D toy data (with the
input gradient that R1 needs), DCGAN for 28x28 images, the R1 penalty and one training step
that both nets share, and sampling.

Mode collapse -- G covering only a few of the data's modes -- is the classic failure. One
published remedy is PacGAN (Lin et al. 2018): D judges `pac` samples at once, concatenated.
m samples from a collapsed G look alike where m real samples do not, so D can tell them
apart by their variety, not only one by one. It changes only D's input layer. (The price:
D's input has m times the dimensions, and on the 5x5 grid of the demo it learned so much
more slowly that the grid does better without packing.)

Another is a gradient penalty on D. R1 (Mescheder et al. 2018, "Which training methods for
GANs do actually converge?") adds gamma/2 E_x ||grad_x D(x)||^2 over real data x to D's
loss. It was proposed to make the game converge (without it D and G can circle the
equilibrium for ever); it also keeps D from growing steep cliffs around the data, so D's
landscape stays smooth enough to lead G's samples on to modes they have left or never
reached. On the 25-Gaussian grid it took the demo from 17-21 modes to all 25.

Shapes: B batch, Z noise size (z_dim), D_in data size (2 for the toys), m = pac.
"""

import itertools

from tinygen import nn
from tinygen.autograd import no_grad
from tinygen.backend import get_array_module
from tinygen.creation import randn
from tinygen.nn import functional as F

# ---- losses -----------------------------------------------------------------------------------
# All four take D's logits (pre-sigmoid scores), [B] or [B, 1], and return a scalar.


def d_loss_nonsaturating(real_logits, fake_logits):
    """D's side of the original game (Goodfellow et al. 2014, eq. 1): maximise
    log D(x) + log(1 - D(G(z))), i.e. minimise the binary cross-entropy with label 1 for
    data and 0 for samples. With logits: softplus(-real) + softplus(fake), averaged."""
    return (F.binary_cross_entropy_with_logits(real_logits, 1.0)
            + F.binary_cross_entropy_with_logits(fake_logits, 0.0))


def g_loss_nonsaturating(fake_logits):
    """G's "non-saturating" loss (Goodfellow et al. 2014, sec. 3): minimise -log D(G(z))
    instead of log(1 - D(G(z))). Same fixed point, but strong gradients early on, when D
    rejects every sample and log(1 - D) is flat."""
    return F.binary_cross_entropy_with_logits(fake_logits, 1.0)


def d_loss_hinge(real_logits, fake_logits):
    """Hinge loss for D (Lim & Ye 2017; Miyato et al. 2018, eq. 16):
    E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]. D is only pushed until the margin holds."""
    return (1.0 - real_logits).relu().mean() + (1.0 + fake_logits).relu().mean()


def g_loss_hinge(fake_logits):
    """G's side of the hinge game: -E[D(G(z))]."""
    return -fake_logits.mean()


LOSSES = {"nonsaturating": (d_loss_nonsaturating, g_loss_nonsaturating),
          "hinge": (d_loss_hinge, g_loss_hinge)}


# ---- PacGAN packing ---------------------------------------------------------------------------
def pack(x, pac):
    """Concatenate each run of `pac` consecutive samples into one (Lin et al. 2018).

    [B, D_in] -> [B/m, m*D_in] (features side by side) and [B, C, H, W] -> [B/m, m*C, H, W]
    (stacked as channels). In C order both are a plain reshape: the m samples of a pack
    are m consecutive rows, and a row's values stay together.
    """
    B = x.shape[0]
    if B % pac:
        raise ValueError(f"pack: a batch of {B} samples does not split into packs of {pac}")
    return x.reshape(B // pac, pac * x.shape[1], *x.shape[2:])


# ---- 2-D toys: MLPs ---------------------------------------------------------------------------
class MLPGenerator(nn.Module):
    """z [B, Z] -> x [B, D_in]: n_layers hidden ReLU layers of `hidden` units, linear output;
    with batch_norm, each hidden layer is batch-normalised before its ReLU (as in PacGAN's
    and VEEGAN's 2-D generators)."""

    def __init__(self, z_dim=2, hidden=256, n_layers=3, out_dim=2, batch_norm=False):
        self.z_dim = z_dim
        sizes = [z_dim] + [hidden] * n_layers
        layers = []
        for n_in, n_out in itertools.pairwise(sizes):
            norm = [nn.BatchNorm1d(n_out)] if batch_norm else []
            layers += [nn.Linear(n_in, n_out), *norm, nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(hidden, out_dim))

    def forward(self, z):
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """x [B, D_in] -> logits [B/m]: packs m = pac samples, then an MLP with LeakyReLU(0.2)
    (DCGAN's choice for D: a unit whose input is negative still passes a gradient)."""

    def __init__(self, in_dim=2, hidden=256, n_layers=3, pac=1):
        self.pac = pac
        sizes = [in_dim * pac] + [hidden] * n_layers
        layers = []
        for n_in, n_out in itertools.pairwise(sizes):
            layers += [nn.Linear(n_in, n_out), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers, nn.Linear(hidden, 1))

    def forward(self, x):
        return self.net(pack(x, self.pac)).reshape(-1)  # [B/m, m*D_in] -> [B/m]

    def forward_with_input_grad(self, x):
        """D(x) and its gradient with respect to D's (packed) input, for the R1 penalty:
        logits [B/m] and grad [m*D_in, B/m], both differentiable in D's weights.

        tinygen's autograd is first order, so the gradient cannot come from a backward that
        is then differentiated again. It need not: D is piecewise linear in x, and
        grad_x D(x) = W_L S_{L-1} W_{L-1} ... S_1 W_1, where S_k is the diagonal of LeakyReLU
        slopes (1 or 0.2) at layer k. Those slopes are constant almost everywhere, so the
        product, carried forward one input direction at a time next to the activations
        (forward-mode differentiation), is exact, and an ordinary backward through it
        gives the penalty's gradient in the weights.
        """
        h = pack(x, self.pac)  # [B', n_in], B' = B/m, n_in = m*D_in
        t = None  # dh/d(input), [n_in, B', H]: row i follows input direction i
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                # d(h W^T + b) = dh W^T; at the first layer dh/d(input) = I, so it is W^T
                t = layer.weight.T.unsqueeze(1) if t is None else F.linear(t, layer.weight)
                h = layer(h)
            elif isinstance(layer, nn.LeakyReLU):  # both are multiplied by the same slopes
                xp = get_array_module(h.data)
                slope = xp.where(h.data > 0, 1.0, layer.negative_slope).astype(h.dtype)
                h, t = h * slope, t * slope  # [B', H], [n_in, B', H]
            else:
                raise TypeError(f"forward_with_input_grad: no rule for {type(layer).__name__}")
        return h.reshape(-1), t.reshape(t.shape[0], -1)  # [B'], [n_in, B']


# ---- DCGAN for 28x28 images (Radford et al. 2016) ---------------------------------------------
# The paper's rules: strided convolutions instead of pooling (transposed ones in G), batch norm
# in both nets except G's output and D's input layers, ReLU in G with tanh at the output,
# LeakyReLU(0.2) in D, weights from N(0, 0.02), Adam with lr 2e-4 and beta1 0.5.
# Sized for 28x28 (MNIST layout): 7x7 -> 14x14 -> 28x28 with 4x4 kernels, stride 2, pad 1.

class DCGANGenerator(nn.Module):
    """z [B, Z] -> images [B, 1, 28, 28] in (-1, 1)."""

    def __init__(self, z_dim=64, ngf=64, channels=1):
        self.z_dim, self.ngf = z_dim, ngf
        # project and reshape: z -> 2ngf feature maps of 7x7 (the paper's first layer)
        self.project = nn.Linear(z_dim, 2 * ngf * 7 * 7, bias=False)
        self.bn0 = nn.BatchNorm1d(2 * ngf * 7 * 7)
        self.deconv1 = nn.ConvTranspose2d(2 * ngf, ngf, 4, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(ngf)
        self.deconv2 = nn.ConvTranspose2d(ngf, channels, 4, stride=2, padding=1)
        dcgan_init_(self)

    def forward(self, z):
        B = z.shape[0]
        h = self.bn0(self.project(z)).relu().reshape(B, 2 * self.ngf, 7, 7)  # [B, 2ngf, 7, 7]
        h = self.bn1(self.deconv1(h)).relu()                                   # [B, ngf, 14, 14]
        return self.deconv2(h).tanh()                                          # [B, 1, 28, 28]


class DCGANDiscriminator(nn.Module):
    """images [B, 1, 28, 28] -> logits [B/m]; with pac = m, m images are stacked as channels."""

    def __init__(self, ndf=64, channels=1, pac=1):
        self.ndf, self.pac = ndf, pac
        self.conv1 = nn.Conv2d(channels * pac, ndf, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(ndf, 2 * ndf, 4, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * ndf)
        self.fc = nn.Linear(2 * ndf * 7 * 7, 1)
        dcgan_init_(self)

    def forward(self, x):
        h = pack(x, self.pac)                                   # [B/m, m, 28, 28]
        h = F.leaky_relu(self.conv1(h), 0.2)                    # [B/m, ndf, 14, 14]
        h = F.leaky_relu(self.bn2(self.conv2(h)), 0.2)          # [B/m, 2ndf, 7, 7]
        return self.fc(h.reshape(h.shape[0], -1)).reshape(-1)  # [B/m]


def dcgan_init_(model):
    """Radford et al. 2016, sec. 4: "All weights were initialized from a zero-centered Normal
    distribution with standard deviation 0.02"; batch-norm gains from N(1, 0.02), shifts 0."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(module.weight, 0.0, 0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(module.weight, 1.0, 0.02)
            nn.init.zeros_(module.bias)


# ---- training and sampling --------------------------------------------------------------------
def noise(n, z_dim, device="cpu"):
    """z ~ N(0, I), [n, Z], from tinygen's global generator (so tg.manual_seed repeats it)."""
    return randn(n, z_dim, device=device)


def r1_penalty(input_grad):
    """R1 (Mescheder et al. 2018, eq. 9, without the gamma / 2): E ||grad_x D(x)||^2 over
    real x. input_grad [D_in, B], from `MLPDiscriminator.forward_with_input_grad`."""
    return (input_grad**2).sum(axis=0).mean()


def train_step(G, D, opt_g, opt_d, real, loss="nonsaturating", r1_gamma=0.0, z=None):
    """One round of the game on a batch of data `real` [B, ...]: a D step, then a G step
    (Goodfellow et al. 2014, Algorithm 1, with k = 1). Returns (d_loss, g_loss) as detached
    0-d tensors on the batch's device: no host sync here; `.item()` them at log time.

    D's step sees G's samples detached, so its loss does not reach G's weights. G's step
    differentiates through D with D's weights frozen: their gradients would go unused, and
    skipping them saves about a third of D's backward pass. With r1_gamma > 0, D's loss
    gains r1_gamma / 2 * `r1_penalty` (MLP discriminators only); d_loss includes it.
    z [B, Z]: G's noise (None: drawn here; data parallel passes its rows of the global batch's).
    """
    d_loss_fn, g_loss_fn = LOSSES[loss]
    fake = G(noise(real.shape[0], G.z_dim, real.device) if z is None else z)
    if r1_gamma:
        real_logits, input_grad = D.forward_with_input_grad(real)
        d_loss = (d_loss_fn(real_logits, D(fake.detach()))
                  + r1_gamma / 2 * r1_penalty(input_grad))
    else:
        d_loss = d_loss_fn(D(real), D(fake.detach()))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()

    _set_requires_grad(D, False)  # until after backward: the engine reads it then
    g_loss = g_loss_fn(D(fake))
    opt_g.zero_grad()
    g_loss.backward()
    _set_requires_grad(D, True)
    opt_g.step()
    return d_loss.detach(), g_loss.detach()


def _set_requires_grad(module, flag):
    for p in module.parameters():
        p.requires_grad_(flag)


@no_grad()
def sample(G, n, device="cpu"):
    """n samples from G in eval mode (batch norm uses its running statistics): [n, ...]."""
    with G.evaluating():
        return G(noise(n, G.z_dim, device))

"""The VAE (tinygen.models.vae): its loss against hand-computed values, gradients through the
reparameterisation, shapes, learning, interpolation, parity with PyTorch, and the demo."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import assert_same_loss_and_grads, torch_from, torch_twin

import tinygen as tg
from tinygen import nn, optim
from tinygen.models.vae import (
    MLPVAE,
    ConvVAE,
    VAEConfig,
    bernoulli_nll,
    gaussian_kl,
    neg_elbo,
    reparameterize,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_conv = pytest.mark.skipif(not hasattr(nn, "Conv2d"), reason="needs nn.Conv2d")


def images(n, size=28, seed=0):
    """n grey images [n, 1, size, size] in [0, 1], mostly near 0 or 1 like real digits."""
    rng = np.random.default_rng(seed)
    return tg.tensor((rng.random((n, 1, size, size)) > 0.6).astype(np.float32) * 0.9)


# ---- the loss -------------------------------------------------------------------------------
def test_neg_elbo_hand_computed():
    # logits 0: every pixel has p = 1/2, so -log p(x|z) = D log 2 whatever x is (D = 4)
    logits = tg.zeros(2, 1, 2, 2)
    x = tg.tensor([[[[0.0, 1.0], [1.0, 0.5]]], [[[1.0, 1.0], [0.0, 0.0]]]])
    # image 0: mu = (1, 0), var = (1, 2): KL = 1/2 (1 + 1 - 0 - 1) + 1/2 (0 + 2 - log 2 - 1)
    # image 1: mu = 0, var = 1: the posterior is the prior, KL = 0
    mu = tg.tensor([[1.0, 0.0], [0.0, 0.0]])
    logvar = tg.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    kl0 = 0.5 + 0.5 * (1.0 - math.log(2.0))
    np.testing.assert_allclose(gaussian_kl(mu, logvar).numpy(), [kl0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(bernoulli_nll(logits, x).numpy(), [4 * math.log(2.0)] * 2,
                               rtol=1e-6)
    expected = 4 * math.log(2.0) + kl0 / 2  # mean over the two images
    assert abs(neg_elbo(logits, x, mu, logvar).item() - expected) < 1e-5


def test_neg_elbo_matches_numpy_formula():
    rng = np.random.default_rng(1)
    logits, x = rng.normal(size=(3, 1, 2, 3)), rng.random((3, 1, 2, 3))
    mu, logvar = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    p = 1 / (1 + np.exp(-logits))
    bce = -(x * np.log(p) + (1 - x) * np.log(1 - p)).reshape(3, -1).sum(axis=1)
    kl = -0.5 * (1 + logvar - mu ** 2 - np.exp(logvar)).sum(axis=1)
    out = neg_elbo(*(tg.tensor(a, dtype=np.float64) for a in (logits, x, mu, logvar)))
    np.testing.assert_allclose(out.item(), (bce + kl).mean(), rtol=1e-10)


def test_reparameterize_gradients_flow_to_mu_and_logvar():
    rng = np.random.default_rng(2)
    eps = rng.normal(size=(3, 4))
    mu = tg.tensor(rng.normal(size=(3, 4)), dtype=np.float64, requires_grad=True)
    logvar = tg.tensor(rng.normal(size=(3, 4)), dtype=np.float64, requires_grad=True)
    assert tg.gradcheck(lambda m, lv: reparameterize(m, lv, eps), [mu, logvar])
    # and the analytic values: dz/dmu = 1, dz/dlogvar = exp(logvar / 2) eps / 2
    mu.grad = logvar.grad = None
    reparameterize(mu, logvar, eps).sum().backward()
    np.testing.assert_allclose(mu.grad.numpy(), np.ones((3, 4)))
    np.testing.assert_allclose(logvar.grad.numpy(), np.exp(logvar.numpy() / 2) * eps / 2)


def test_neg_elbo_gradcheck_through_the_sample():
    rng = np.random.default_rng(3)
    eps, x = rng.normal(size=(2, 3)), rng.random((2, 5))
    w = rng.normal(size=(3, 5))  # a linear "decoder" so z's gradient reaches mu and logvar

    def loss(mu, logvar):
        z = reparameterize(mu, logvar, eps)
        return neg_elbo(z @ tg.tensor(w), tg.tensor(x), mu, logvar)

    inputs = [tg.tensor(rng.normal(size=(2, 3)), dtype=np.float64, requires_grad=True)
              for _ in range(2)]
    assert tg.gradcheck(loss, inputs)


def test_reparameterize_draws_the_right_distribution():
    tg.manual_seed(0)
    mu, logvar = tg.full((20000, 2), 1.5), tg.full((20000, 2), math.log(0.25))
    z = reparameterize(mu, logvar).numpy()
    assert abs(z.mean() - 1.5) < 0.02 and abs(z.std() - 0.5) < 0.02


# ---- the models -----------------------------------------------------------------------------
def test_mlp_vae_matches_pytorch_examples_layout():
    model = MLPVAE()
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert shapes == {"fc1.weight": (400, 784), "fc1.bias": (400,),
                      "fc21.weight": (20, 400), "fc21.bias": (20,),
                      "fc22.weight": (20, 400), "fc22.bias": (20,),
                      "fc3.weight": (400, 20), "fc3.bias": (400,),
                      "fc4.weight": (784, 400), "fc4.bias": (784,)}
    assert model.num_parameters() == 652_824


@pytest.mark.parametrize("kind", ["mlp", pytest.param("conv", marks=needs_conv)])
def test_shapes(kind):
    tg.manual_seed(0)
    model = MLPVAE() if kind == "mlp" else ConvVAE()
    x = images(5)
    logits, mu, logvar = model(x)
    assert logits.shape == (5, 1, 28, 28) and mu.shape == logvar.shape == (5, 20)
    loss = model.neg_elbo(x)
    assert loss.shape == () and math.isfinite(loss.item())
    loss.backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())
    samples = model.sample(3)
    assert samples.shape == (3, 1, 28, 28) and not samples.requires_grad
    assert 0.0 <= samples.numpy().min() and samples.numpy().max() <= 1.0
    assert model.reconstruct(x).shape == (5, 1, 28, 28)
    assert model.interpolate(x[:2], x[2:4], steps=7).shape == (2, 7, 1, 28, 28)
    assert model.interpolate(x[0], x[1], steps=7).shape == (7, 1, 28, 28)


@pytest.mark.parametrize("kind", ["mlp", pytest.param("conv", marks=needs_conv)])
def test_tiny_vae_overfits_a_few_images(kind):
    tg.manual_seed(0)
    config = VAEConfig(model=kind, image_size=8, n_latent=4, n_hidden=64, n_channels=8)
    model = MLPVAE(config) if kind == "mlp" else ConvVAE(config)
    x = images(8, size=8)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(150):
        loss = model.neg_elbo(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # 64 pixels start near 64 log 2 = 44 nats; a memorised batch costs a fraction of that
    assert np.mean(losses[-10:]) < 0.5 * losses[0], (losses[0], losses[-10:])


def test_interpolation_endpoints_decode_the_endpoint_latents():
    tg.manual_seed(0)
    model = MLPVAE(VAEConfig(image_size=8, n_latent=3, n_hidden=16))
    x_a, x_b = images(2, size=8, seed=1), images(2, size=8, seed=2)
    walk = model.interpolate(x_a, x_b, steps=5).numpy()            # [2, 5, 1, 8, 8]
    for x, end in ((x_a, 0), (x_b, -1)):
        mu, _ = model.encode(x)
        np.testing.assert_allclose(walk[:, end], model.decode(mu).sigmoid().numpy(),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(walk[:, end], model.reconstruct(x).numpy(), atol=1e-6)
    # the middle point decodes the midpoint of the two codes
    mid = (model.encode(x_a)[0] + model.encode(x_b)[0]) * 0.5
    np.testing.assert_allclose(walk[:, 2], model.decode(mid).sigmoid().numpy(), atol=1e-5)


@pytest.mark.parametrize("kind", ["mlp", pytest.param("conv", marks=needs_conv)])
def test_same_loss_and_gradients_as_pytorch(kind):
    tg.manual_seed(0)
    config = VAEConfig(model=kind, image_size=8, n_latent=4, n_hidden=16, n_channels=4)
    if kind == "mlp":
        model = MLPVAE(config)
        twin = torch_twin("torch_vae", "TorchMLPVAE", model, n_pixels=64, n_hidden=16,
                          n_latent=4, image_shape=(1, 8, 8))
    else:
        model = ConvVAE(config)
        twin = torch_twin("torch_vae", "TorchConvVAE", model, image_size=8, n_latent=4,
                          n_channels=4)
    x = images(3, size=8)
    eps = np.random.default_rng(4).normal(size=(3, 4))
    mu, logvar = model.encode(x)
    loss = neg_elbo(model.decode(reparameterize(mu, logvar, eps.astype(np.float32))),
                    x, mu, logvar)
    loss.backward()
    import torch

    xt = torch_from(x.numpy())
    mu_t, logvar_t = twin.encode(xt)
    logits_t = twin.decode(mu_t + torch.exp(0.5 * logvar_t) * torch.from_numpy(eps))
    nll_t = torch.nn.functional.binary_cross_entropy_with_logits(logits_t, xt, reduction="sum")
    kl_t = -0.5 * torch.sum(1 + logvar_t - mu_t.pow(2) - logvar_t.exp())
    loss_t = (nll_t + kl_t) / 3
    loss_t.backward()
    assert_same_loss_and_grads(model, loss, twin, loss_t)


def test_bad_input_gets_a_clear_error():
    model = MLPVAE()
    with pytest.raises(ValueError, match=r"expects images \[B, 1, 28, 28\], got shape \(3, 784\)"):
        model.neg_elbo(tg.zeros(3, 784))
    with pytest.raises(ValueError, match="same shape"):
        bernoulli_nll(tg.zeros(3, 1, 28, 28), tg.zeros(3, 1))


# ---- the demo -------------------------------------------------------------------------------
def test_demo_smoke(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "demos", "vae.py"), "--smoke",
                          "--out_dir", str(tmp_path)], capture_output=True, text=True,
                         timeout=120, cwd=ROOT, check=False)
    assert out.returncode == 0, out.stderr
    assert "data: " in out.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("test_neg_elbo_nats", "train_neg_elbo_nats", "seconds", "seed", "data",
                "epochs", "model"):
        assert key in summary
    assert math.isfinite(summary["test_neg_elbo_nats"]) and summary["test_neg_elbo_nats"] > 0
    for name in ("samples", "reconstructions", "interpolations"):
        png = tmp_path / f"{name}.png"
        assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), name

"""GANs: the losses against hand-worked values, PacGAN packing, the R1 penalty, model shapes,
a short toy run that learns, and smoke runs of demos/gan.py."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import tinygen as tg
from tinygen import optim
from tinygen.data.toys import ring_distribution
from tinygen.gradcheck import gradcheck
from tinygen.models.gan import (
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    d_loss_hinge,
    d_loss_nonsaturating,
    g_loss_hinge,
    g_loss_nonsaturating,
    pack,
    r1_penalty,
    sample,
    train_step,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LN3 = math.log(3.0)  # sigmoid(ln 3) = 3/4, a logit whose probabilities are easy to write


# ---- losses -----------------------------------------------------------------------------------
def test_nonsaturating_losses_by_hand():
    real = tg.tensor([0.0, LN3])    # D(x) = 1/2, 3/4
    fake = tg.tensor([LN3, -LN3])   # D(G(z)) = 3/4, 1/4
    # D: mean -log D(x) + mean -log(1 - D(G(z)))
    d = (math.log(2) + math.log(4 / 3)) / 2 + (math.log(4) + math.log(4 / 3)) / 2
    # G: mean -log D(G(z))
    g = (math.log(4 / 3) + math.log(4)) / 2
    assert d_loss_nonsaturating(real, fake).item() == pytest.approx(d, rel=1e-6)
    assert g_loss_nonsaturating(fake).item() == pytest.approx(g, rel=1e-6)


def test_nonsaturating_generator_gradient_does_not_vanish():
    """Where D confidently rejects a sample (logit -10), log(1 - D) is flat, but the
    non-saturating loss -log D still pulls with slope about -1 (Goodfellow et al. 2014)."""
    fake = tg.tensor([-10.0], requires_grad=True)
    g_loss_nonsaturating(fake).backward()
    assert fake.grad.item() == pytest.approx(-1.0, abs=1e-4)
    saturating = tg.tensor([-10.0], requires_grad=True)
    (1 - saturating.sigmoid()).log().mean().backward()  # minimise log(1 - D(G(z)))
    assert abs(saturating.grad.item()) < 1e-4


def test_hinge_losses_by_hand():
    real = tg.tensor([2.0, 0.5, -1.0])
    fake = tg.tensor([-2.0, 0.0, 0.5])
    # mean max(0, 1 - real) = (0 + 0.5 + 2) / 3;  mean max(0, 1 + fake) = (0 + 1 + 1.5) / 3
    assert d_loss_hinge(real, fake).item() == pytest.approx(2.5 / 3 + 2.5 / 3, rel=1e-6)
    assert g_loss_hinge(fake).item() == pytest.approx(0.5, rel=1e-6)


# ---- packing ----------------------------------------------------------------------------------
def test_pack_concatenates_consecutive_points():
    x = tg.arange(12, dtype=tg.float32).reshape(6, 2)  # six 2-D points
    packed = pack(x, 2)
    assert packed.shape == (3, 4)
    np.testing.assert_array_equal(packed.numpy()[1], [4, 5, 6, 7])  # points 2 and 3


def test_pack_stacks_images_as_channels():
    x = tg.randn(6, 1, 5, 5)
    packed = pack(x, 3).numpy()
    assert packed.shape == (2, 3, 5, 5)
    for j in range(3):  # pack 1, channel j is image 3 + j
        np.testing.assert_array_equal(packed[1, j], x.numpy()[3 + j, 0])


def test_pack_rejects_a_ragged_batch():
    with pytest.raises(ValueError, match="packs of 4"):
        pack(tg.randn(6, 2), 4)


# ---- R1 penalty -------------------------------------------------------------------------------
@pytest.mark.parametrize("pac", [1, 2])
def test_input_grad_matches_backward(pac):
    """forward_with_input_grad's forward-mode gradient equals the one backward() finds."""
    tg.manual_seed(0)
    D = MLPDiscriminator(in_dim=2, hidden=16, n_layers=3, pac=pac)
    x = tg.randn(6, 2, requires_grad=True)
    logits, input_grad = D.forward_with_input_grad(x)
    assert logits.shape == (6 // pac,) and input_grad.shape == (2 * pac, 6 // pac)
    np.testing.assert_allclose(logits.numpy(), D(x).numpy(), rtol=1e-6)
    D(x).sum().backward()  # each logit depends on its own pack only, so this is per pack
    packed_grad = x.grad.numpy().reshape(6 // pac, 2 * pac)  # [B/m, m*D_in]
    np.testing.assert_allclose(input_grad.numpy().T, packed_grad, rtol=1e-5, atol=1e-6)


def test_input_grad_by_hand():
    """One hidden layer: grad_x D = w2 diag(slopes) W1, slopes 1 where the unit is on, 0.2
    where it is off."""
    D = MLPDiscriminator(in_dim=2, hidden=2, n_layers=1)
    D.net[0].weight.data[:] = [[1.0, 2.0], [3.0, -1.0]]
    D.net[0].bias.data[:] = 0.0
    D.net[2].weight.data[:] = [[0.5, 2.0]]
    x = tg.tensor([[1.0, 1.0]])  # hidden pre-activations 3 (on) and 2 (on)
    x2 = tg.tensor([[-1.0, 0.0]])  # -1 (off, slope 0.2) and -3 (off)
    _, g = D.forward_with_input_grad(x)
    np.testing.assert_allclose(g.numpy()[:, 0], [0.5 * 1 + 2 * 3, 0.5 * 2 + 2 * -1])
    _, g2 = D.forward_with_input_grad(x2)
    np.testing.assert_allclose(g2.numpy()[:, 0], [0.2 * (0.5 + 6), 0.2 * (1 - 2)], rtol=1e-6)
    assert r1_penalty(g).item() == pytest.approx(6.5**2 + 1.0**2)


def test_r1_penalty_gradient_in_the_weights():
    """The penalty's gradient in D's weights (a plain backward through the forward-mode
    product) against central differences, in float64."""
    tg.manual_seed(0)
    D = MLPDiscriminator(in_dim=2, hidden=8, n_layers=2)
    params = list(D.parameters())
    for p in params:
        p.data = p.data.astype(np.float64)
    x = tg.tensor(np.random.default_rng(0).standard_normal((5, 2)))

    def penalty(*weights):
        return r1_penalty(D.forward_with_input_grad(x)[1])

    assert gradcheck(penalty, params)


def test_train_step_with_r1_adds_the_penalty():
    tg.manual_seed(0)
    G = MLPGenerator(z_dim=2, hidden=8, n_layers=1)
    D = MLPDiscriminator(in_dim=2, hidden=8, n_layers=1)
    opt_g, opt_d = optim.SGD(G.parameters(), lr=0.0), optim.SGD(D.parameters(), lr=0.0)
    real = tg.randn(16, 2)
    tg.manual_seed(1)
    plain = train_step(G, D, opt_g, opt_d, real)[0].item()
    tg.manual_seed(1)  # the same fake batch
    with_r1 = train_step(G, D, opt_g, opt_d, real, r1_gamma=4.0)[0].item()
    with tg.no_grad():
        penalty = r1_penalty(D.forward_with_input_grad(real)[1]).item()
    assert with_r1 == pytest.approx(plain + 2.0 * penalty, rel=1e-5)


# ---- shapes -----------------------------------------------------------------------------------
def test_mlp_shapes():
    tg.manual_seed(0)
    G = MLPGenerator(z_dim=3, hidden=16, n_layers=2, out_dim=2)
    D = MLPDiscriminator(in_dim=2, hidden=16, n_layers=2, pac=2)
    x = G(tg.randn(10, 3))
    assert x.shape == (10, 2)
    assert D(x).shape == (5,)                   # one logit per pack of 2
    assert D.net[0].weight.shape == (16, 4)     # the input layer sees 2 points = 4 numbers


def test_dcgan_shapes():
    tg.manual_seed(0)
    G = DCGANGenerator(z_dim=8, ngf=4)
    D = DCGANDiscriminator(ndf=4, pac=2)
    x = G(tg.randn(6, 8))
    assert x.shape == (6, 1, 28, 28)
    assert np.abs(x.numpy()).max() < 1          # tanh output
    assert D(x).shape == (3,)
    assert D.conv1.weight.shape == (4, 2, 4, 4)  # 2 packed images as 2 input channels
    assert sample(G, 5).shape == (5, 1, 28, 28)
    assert G.training                           # sample() puts train mode back


def test_dcgan_train_step_runs_and_moves_both_nets():
    tg.manual_seed(0)
    G, D = DCGANGenerator(z_dim=8, ngf=4), DCGANDiscriminator(ndf=4)
    before = [p.numpy().copy() for p in (G.project.weight, D.fc.weight)]
    opt_g, opt_d = optim.Adam(G.parameters(), lr=1e-3), optim.Adam(D.parameters(), lr=1e-3)
    d_loss, g_loss = train_step(G, D, opt_g, opt_d, tg.rand(8, 1, 28, 28) * 2 - 1, "hinge")
    assert d_loss.shape == g_loss.shape == () and not d_loss.requires_grad  # no host sync
    assert math.isfinite(d_loss.item()) and math.isfinite(g_loss.item())
    for b, p in zip(before, (G.project.weight, D.fc.weight)):
        assert not np.allclose(b, p.numpy())
    assert all(p.requires_grad for p in D.parameters())  # frozen only during G's step


# ---- learning ---------------------------------------------------------------------------------
def test_short_toy_run_pulls_samples_onto_the_ring():
    """400 steps of a small GAN on the ring of radius 2: G starts with samples near the
    origin and must move them out to the ring. If G's gradient through D were broken, or
    D learned nothing, the samples would not move."""
    tg.manual_seed(0)
    rng = np.random.default_rng(0)
    ring = ring_distribution()
    G = MLPGenerator(z_dim=2, hidden=32, n_layers=2)
    D = MLPDiscriminator(in_dim=2, hidden=32, n_layers=2, pac=2)
    opt_g = optim.Adam(G.parameters(), lr=2e-3, betas=(0.5, 0.999))
    opt_d = optim.Adam(D.parameters(), lr=2e-3, betas=(0.5, 0.999))
    z = tg.randn(256, 2)

    def off_ring():  # mean distance of G's samples from the circle of radius 2
        with tg.no_grad():
            return np.abs(np.linalg.norm(G(z).numpy(), axis=1) - 2).mean()

    start = off_ring()
    for _ in range(400):
        train_step(G, D, opt_g, opt_d, tg.tensor(ring.sample(64, rng)))
    assert start > 1.2
    assert off_ring() < 0.6 * start


# ---- the demo ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dataset, keys", [
    ("ring", ["modes_captured", "modes_total", "high_quality_frac"]),
    ("grid", ["modes_captured", "modes_total", "high_quality_frac"]),  # with R1
    ("fashion", ["classes_covered", "confident_frac"]),
])
def test_demo_smoke(tmp_path, dataset, keys):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "demos", "gan.py"), "--smoke",
                          "--dataset", dataset, "--out_dir", str(tmp_path)],
                         check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert json.loads(out.stdout.strip().splitlines()[-1]) == summary
    for key in keys + ["seconds", "seed", "dataset", "data_source"]:
        assert key in summary
    assert summary["dataset"] == dataset
    assert (tmp_path / f"{dataset}_samples.png").exists()

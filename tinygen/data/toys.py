"""2-D mixtures of Gaussians for watching mode collapse, and the metric that counts it.

    ring = ring_distribution()                   # 8 modes on a circle of radius 2
    real = ring.sample(2500, rng)                # float32 [2500, 2]
    fake = generator(noise)                      # what a GAN made, [2500, 2]
    print(ring.coverage(fake))                   # {'modes_captured': 8, 'modes_total': 8, ...}

The two standard benchmarks:

- Ring: 8 Gaussians evenly spaced on a circle of radius 2 with sigma 0.02, the ring of
  Unrolled GANs (Metz et al. 2017) on which VEEGAN (Srivastava et al. 2017) and later papers
  compare. PacGAN (Lin et al. 2018) uses the same ring halved: radius 1, sigma 0.01 (`MEANS`
  and `VARIANCES` in its synthetic_data_experiments/2DRing config); radius / sigma = 100 in
  both, and the metric below measures distances in sigmas, so both give the same counts.
- Grid: 25 Gaussians at {-4, -2, 0, 2, 4}^2 with sigma 0.05 (PacGAN's 2DGrid config; PacGAN's
  paper writes it as variance 0.0025).
"""

from dataclasses import dataclass

import numpy as np


# ---- the metric -----------------------------------------------------------------------------
def mode_coverage(samples, centers, std, n_std=3.0, min_count=1):
    """Count which modes of a Gaussian mixture some samples hit, as VEEGAN and PacGAN do.

    VEEGAN (Srivastava et al. 2017, Sec. 5.1): "count a sample as high quality if it is within
    three standard deviations of the nearest mode ... the number of modes captured [is] the
    number of mixture components whose mean is nearest to at least one high quality sample";
    they draw 2,500 samples per model. PacGAN's code (`MetricLogger` in pacgan/extensions.py)
    does exactly this: it assigns each sample to its nearest mode in units of sigma, keeps it if
    that distance is below 3, and counts the modes with a nonzero count. `min_count` > 1 gives a
    stricter rule (a mode needs at least that many high-quality samples); 1 is the papers'.

    samples [N, 2], centers [K, 2], std: the (isotropic) sigma of every mode.
    Returns a dict: modes_captured, modes_total, high_quality_frac (the share of all samples
    that are high quality; NaN or inf samples count as low quality) and counts, the number of
    high-quality samples at each mode [K].
    """
    samples = np.asarray(samples, dtype=np.float64)
    centers = np.asarray(centers, dtype=np.float64)
    if samples.ndim != 2 or centers.ndim != 2 or samples.shape[1] != centers.shape[1]:
        raise ValueError(f"mode_coverage: want samples [N, D] and centers [K, D], got "
                         f"{samples.shape} and {centers.shape}")
    if len(samples) == 0:
        raise ValueError("mode_coverage: no samples")
    diff = samples[:, None, :] - centers[None, :, :]  # [N, 1, D] - [1, K, D] -> [N, K, D]
    dist = np.sqrt((diff**2).sum(axis=-1)) / std  # [N, K], in sigmas
    nearest = np.argmin(np.nan_to_num(dist, nan=np.inf), axis=1)  # [N]
    high_quality = dist[np.arange(len(samples)), nearest] < n_std  # NaN < 3 is False
    counts = np.bincount(nearest[high_quality], minlength=len(centers))  # [K]
    return {"modes_captured": int((counts >= min_count).sum()),
            "modes_total": len(centers),
            "high_quality_frac": float(high_quality.mean()),
            "counts": counts}


# ---- the distributions ----------------------------------------------------------------------
@dataclass(frozen=True)
class ToyDistribution:
    """An equal-weight mixture of isotropic Gaussians in 2-D."""
    name: str
    centers: np.ndarray  # [K, 2], the mode means
    std: float  # sigma of every mode, along each axis

    @property
    def n_modes(self):
        return len(self.centers)

    def sample(self, n, rng):
        """n samples, float32 [n, 2]: pick a mode uniformly at random, add N(0, std^2 I)."""
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"sample: rng must be a numpy.random.Generator, got "
                            f"{type(rng).__name__}")
        modes = rng.integers(0, self.n_modes, size=n)  # [n]
        noise = rng.standard_normal((n, 2))  # [n, 2]
        return (self.centers[modes] + self.std * noise).astype(np.float32)

    def coverage(self, samples, n_std=3.0, min_count=1):
        """`mode_coverage` of `samples` against this distribution's modes."""
        return mode_coverage(samples, self.centers, self.std, n_std, min_count)


def ring_distribution(n_modes=8, radius=2.0, std=0.02):
    """`n_modes` Gaussians evenly spaced on a circle, the first at angle 0 (on the +x axis)."""
    angles = 2 * np.pi * np.arange(n_modes) / n_modes
    centers = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)  # [K, 2]
    return ToyDistribution(f"ring of {n_modes} Gaussians", centers, float(std))


def grid_distribution(side=5, spacing=2.0, std=0.05):
    """side x side Gaussians on a square grid centred at 0: {-4, -2, 0, 2, 4}^2 by default."""
    ticks = (np.arange(side) - (side - 1) / 2) * spacing
    xs, ys = np.meshgrid(ticks, ticks, indexing="ij")
    centers = np.stack([xs.ravel(), ys.ravel()], axis=1)  # [side^2, 2]
    return ToyDistribution(f"{side}x{side} grid of Gaussians", centers, float(std))


def ring_of_gaussians(n, rng, n_modes=8, radius=2.0, std=0.02):
    """n samples from `ring_distribution(n_modes, radius, std)`: float32 [n, 2]."""
    return ring_distribution(n_modes, radius, std).sample(n, rng)


def grid_of_gaussians(n, rng, side=5, spacing=2.0, std=0.05):
    """n samples from `grid_distribution(side, spacing, std)`: float32 [n, 2]."""
    return grid_distribution(side, spacing, std).sample(n, rng)

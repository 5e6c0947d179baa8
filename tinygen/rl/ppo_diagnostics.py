"""PPO's diagnostics, as CleanRL logs them: approx_kl, clipfrac, explained_variance (floats,
no gradient; rl/ppo.py re-exports them)."""

from tinygen.backend import get_array_module
from tinygen.creation import as_tensor


# Each has a private twin on arrays that returns a 0-d array on the device, so that the update
# collects them without a sync and reads them all at once when it ends.
def approx_kl(logratio, mask=None):
    """Estimate of KL(π_old ‖ π_new) from log r = log π_new - log π_old on samples of π_old:
    mean((r - 1) - log r), unbiased and never negative (Schulman, "Approximating KL
    divergence", 2020)."""
    logratio = as_tensor(logratio)
    return float(_approx_kl(logratio.data, _mask_on(mask, logratio)))


def _mask_on(mask, like):
    """mask's array on the device of the Tensor `like` (None stays None)."""
    return None if mask is None else as_tensor(mask, like=like).data


def _mean(x, mask):
    return x.mean() if mask is None else (x * mask).sum() / mask.sum()


def _approx_kl(logratio, mask=None):
    return _mean((get_array_module(logratio).exp(logratio) - 1) - logratio, mask)


def clipfrac(ratio, clip_coef, mask=None):
    """Fraction of samples whose ratio was outside [1 - clip_coef, 1 + clip_coef]."""
    ratio = as_tensor(ratio)
    return float(_clipfrac(ratio.data, clip_coef, _mask_on(mask, ratio)))


def _clipfrac(ratio, clip_coef, mask=None):
    return _mean((abs(ratio - 1.0) > clip_coef).astype(ratio.dtype), mask)


def explained_variance(values, returns, mask=None):
    """1 - Var(returns - values) / Var(returns): 1 for a perfect critic, 0 for one that
    predicts a constant, negative when worse than that; NaN when the returns are constant."""
    values = as_tensor(values)
    return float(_explained_variance(values.data, as_tensor(returns, like=values).data,
                                     _mask_on(mask, values)))


def _explained_variance(values, returns, mask=None):  # NaN where Var(returns) = 0
    var_y, var_e = (_mean((x - _mean(x, mask)) ** 2, mask) for x in (returns, returns - values))
    xp = get_array_module(values)
    return xp.where(var_y == 0, xp.nan, 1 - var_e / xp.where(var_y == 0, 1, var_y))

"""Gradient clipping by global norm."""

import math

from tinygen.backend import get_array_module
from tinygen.tensor import Tensor


def clip_grad_norm_(parameters, max_norm):
    """Scale all gradients in place so their joint L2 norm is at most max_norm.
    Returns the norm before clipping (as a float), as torch.nn.utils.clip_grad_norm_ does."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad.data for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    total = 0.0
    for g in grads:
        flat = g.reshape(-1)
        total += float(get_array_module(g).dot(flat, flat))
    norm = math.sqrt(total)
    if not math.isfinite(norm):
        raise FloatingPointError(f"clip_grad_norm_: the gradient norm is {norm}")
    coef = max_norm / (norm + 1e-6)
    if coef < 1.0:
        for g in grads:
            g *= coef
    return norm

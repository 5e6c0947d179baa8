"""Gradient clipping by global norm."""

import math

import numpy as np

from tinygen.backend import get_array_module
from tinygen.tensor import Tensor


def clip_grad_norm_(parameters, max_norm):
    """Scale all gradients in place so their joint L2 norm is at most max_norm.

    Returns the norm before clipping, as torch.nn.utils.clip_grad_norm_ does: a float on the
    CPU; on the GPU a 0-d Tensor on the device, so that clipping never waits for the GPU
    (read it with .item() at a log step). On the CPU a non-finite norm raises
    FloatingPointError; on the GPU that check would need a sync, so the norm (nan/inf) is
    returned and the gradients are left as they are."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    parameters = [p for p in parameters if p.grad is not None]
    if not parameters:
        return 0.0
    grads = _whole_buffers(parameters)
    xp = get_array_module(grads[0])
    if xp is not np:
        # one reduction per gradient (per flat buffer), summed on the device; coef = min(1, max / (norm + ε))
        total = xp.stack([xp.dot(g.reshape(-1), g.reshape(-1)).astype(xp.float64)
                          for g in grads]).sum()
        norm = xp.sqrt(total)
        coef = xp.minimum(max_norm / (norm + 1e-6), 1.0)
        coef = xp.where(xp.isfinite(norm), coef, 1.0)
        coefs = {}
        for g in grads:
            if g.dtype not in coefs:
                coefs[g.dtype] = coef.astype(g.dtype)
            g *= coefs[g.dtype]
        return Tensor._make(norm, None)
    total = 0.0
    for g in grads:
        flat = g.reshape(-1)
        total += float(xp.dot(flat, flat))
    norm = math.sqrt(total)
    if not math.isfinite(norm):
        raise FloatingPointError(f"clip_grad_norm_: the gradient norm is {norm}")
    coef = max_norm / (norm + 1e-6)
    if coef < 1.0:
        for g in grads:
            g *= coef
    return norm


def _whole_buffers(parameters):
    """The gradient arrays to clip: a flat buffer's whole gradient (optim/flat.py) in place of
    its parameters' gradients when all of them are here and set, each other gradient as is."""
    flats = {}
    for p in parameters:
        flat = getattr(p, "_flat", None)
        if flat is not None:
            flats.setdefault(id(flat), (flat, set()))[1].add(id(p))
    whole = {key for key, (flat, ids) in flats.items()
             if len(ids) == len(flat.params) and flat.intact() and flat.has_all_grads()}
    grads = [flats[key][0].grad for key in whole]
    return grads + [p.grad.data for p in parameters
                    if id(getattr(p, "_flat", None)) not in whole]

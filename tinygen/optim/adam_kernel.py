"""optim/adam.cu's launch beside its reference: one Adam/AdamW step over flat buffers.

As in ops/kernel_calls.py: `adam_step_reference` (array code, any device; what runs while the
kernel is switched off, the default), `adam_step_cuda` (the launch, CuPy float32 buffers),
and the dispatch `adam_step`, the kernel only when ops.kernels has "adam" switched on.
The update is optim/adam.py's, written once over a whole buffer: every parameter of a
device and dtype in one contiguous array, its gradients, and both moments likewise.
"""

import math

import numpy as np

from tinygen.backend import get_array_module
from tinygen.ops import kernels
from tinygen.ops.kernels import grid_1d, launch

i32, i64, f32 = np.int32, np.int64, np.float32


def adam_step_reference(param, grad, exp_avg, exp_avg_sq, step, lr, betas=(0.9, 0.999),
                        eps=1e-8, weight_decay=0.0, decoupled=True, decay=None):
    """One Adam (decoupled=False) or AdamW step, in place on param, exp_avg, exp_avg_sq
    (flat buffers of one dtype); decay [n] uint8/bool, 1 where weight decay applies."""
    xp = get_array_module(param)
    beta1, beta2 = betas
    wd = weight_decay if decay is None else weight_decay * decay.astype(param.dtype)
    if decoupled:
        param -= (lr * wd) * param                # AdamW: shrink the weights directly
    else:
        grad = grad + wd * param                  # Adam: L2 penalty in the gradient
    exp_avg *= beta1
    exp_avg += (1.0 - beta1) * grad
    exp_avg_sq *= beta2
    exp_avg_sq += (1.0 - beta2) * (grad * grad)
    denom = xp.sqrt(exp_avg_sq) * (1.0 / math.sqrt(1.0 - beta2 ** step)) + eps
    param -= (lr / (1.0 - beta1 ** step)) * exp_avg / denom
    return param


def adam_step_cuda(param, grad, exp_avg, exp_avg_sq, step, lr, betas=(0.9, 0.999),
                   eps=1e-8, weight_decay=0.0, decoupled=True, decay=None):
    for name, a in (("param", param), ("grad", grad), ("exp_avg", exp_avg),
                    ("exp_avg_sq", exp_avg_sq)):
        if not a.flags.c_contiguous or a.size != param.size:
            raise ValueError(f"adam_step: {name} must be contiguous with {param.size} "
                             f"elements (a flat buffer), got shape {a.shape}")
    if decay is not None and decay.size != param.size:
        raise ValueError(f"adam_step: decay has {decay.size} flags for {param.size} elements")
    beta1, beta2 = betas
    xp = get_array_module(param)
    flags = (xp.zeros(1, np.uint8) if decay is None                # unread when there are none
             else xp.ascontiguousarray(decay.astype(np.uint8, copy=False)))
    launch("adam", "adam_step", grid_1d(param.size), (256,),
           (param, grad, exp_avg, exp_avg_sq, flags, i32(decay is not None), i64(param.size),
            f32(lr), f32(beta1), f32(beta2), f32(eps), f32(weight_decay),
            f32(lr / (1.0 - beta1 ** step)), f32(1.0 / math.sqrt(1.0 - beta2 ** step)),
            i32(bool(decoupled))))
    return param


def adam_step(param, grad, exp_avg, exp_avg_sq, step, lr, betas=(0.9, 0.999), eps=1e-8,
              weight_decay=0.0, decoupled=True, decay=None):
    step_fn = adam_step_cuda if kernels.use("adam", param, grad, exp_avg, exp_avg_sq) else (
        adam_step_reference)
    return step_fn(param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay,
                   decoupled, decay)

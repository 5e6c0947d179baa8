"""What the optimizer tests share: two parameters, the gradients fed at each step (the same
for every implementation) and the optimizer configurations compared with torch.optim."""

import numpy as np

import tinygen as tg
from tinygen import nn, optim

SHAPES = [(3, 4), (5,)]
STEPS = 5

# name -> (tinygen class, torch class name, options)
CONFIGS = {
    "sgd": (optim.SGD, "SGD", {"lr": 0.1}),
    "sgd-momentum": (optim.SGD, "SGD", {"lr": 0.1, "momentum": 0.9}),
    "sgd-dampening": (optim.SGD, "SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.3}),
    "sgd-nesterov": (optim.SGD, "SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    "sgd-weight_decay": (optim.SGD, "SGD", {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.1}),
    "adam": (optim.Adam, "Adam", {"lr": 0.01}),
    "adam-weight_decay": (optim.Adam, "Adam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6,
                                               "weight_decay": 0.1}),
    "adamw": (optim.AdamW, "AdamW", {"lr": 0.01, "weight_decay": 0.1}),
    "adamw-betas": (optim.AdamW, "AdamW", {"lr": 0.02, "betas": (0.5, 0.9), "weight_decay": 0.5}),
}


def initial_values(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in SHAPES]


def grads_for(step):
    """The gradient fed at `step`: fixed random values, the same for every implementation."""
    rng = np.random.default_rng(100 + step)
    return [rng.standard_normal(s) for s in SHAPES]


def make(cls, options, values=None, dtype=np.float64, device="cpu"):
    values = initial_values() if values is None else values
    params = [nn.Parameter(tg.tensor(v.astype(dtype), device=device)) for v in values]
    return params, cls(params, **options)


def step(params, opt, k):
    for p, g in zip(params, grads_for(k)):
        p.grad = tg.tensor(g.astype(p.dtype), device=p.device)
    opt.step()

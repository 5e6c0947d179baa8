"""Parameter groups for weight decay, as nanoGPT's `configure_optimizers` builds them."""

from tinygen.optim.adam import AdamW


def decay_groups(params, weight_decay):
    """Two parameter groups: matrices (ndim >= 2: Linear and embedding weights) decay with
    `weight_decay`; vectors and scalars (biases, LayerNorm gains, CLIP's logit_scale) are
    exempt, since shrinking them towards 0 has no regularising meaning (nanoGPT)."""
    params = list(params)
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def configure_optimizers(model, weight_decay, learning_rate, betas, eps=1e-8):
    """AdamW over `model`'s parameters with weight decay on matrices only (decay_groups).
    (A weight tied between two layers is one parameter and is decayed once.)"""
    return AdamW(decay_groups(model.parameters(), weight_decay), lr=learning_rate,
                 betas=betas, eps=eps)

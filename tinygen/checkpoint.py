"""Training checkpoints: everything a run needs to continue exactly where it stopped.

One safetensors file (see serialization.py) holds the model's weights, the optimizer's
moments and step counts, the training step, the random-number state (tinygen's global
generator, every device's generator (see random.py) and any others the caller passes) and JSON-able extras such as the config and
the tokenizer. Written atomically, so a crash mid-save leaves the last good file intact.
"""

from tinygen.random import get_rng_state, get_rng_states, set_rng_state, set_rng_states
from tinygen.serialization import load, save


def save_checkpoint(path, model, optimizer=None, step=0, rngs=None, **extra):
    """Write model + optimizer + step + RNG states + extra JSON-able values to `path`.
    `rngs` maps names to numpy Generators whose states should be saved too."""
    ckpt = {
        "model": model.state_dict(),
        "step": int(step),
        "rng": {"tinygen": get_rng_state(),  # the CPU generator, as before
                "tinygen_devices": {d: s for d, s in get_rng_states().items() if d != "cpu"},
                **{name: g.bit_generator.state for name, g in (rngs or {}).items()}},
        **extra,
    }
    if optimizer is not None:
        ckpt["optimizer"] = optimizer.state_dict()
    save(ckpt, path)


def load_checkpoint(path, model=None, optimizer=None, rngs=None, device="cpu"):
    """Read a checkpoint; restore it into `model`, `optimizer`, the global generator and
    the Generators in `rngs` (by name). Returns the whole checkpoint dict (step, extras)."""
    ckpt = load(path, device=device)
    if model is not None:
        model.load_state_dict(ckpt["model"])
    if optimizer is not None:
        if "optimizer" not in ckpt:
            raise KeyError(f"load_checkpoint: {path} holds no optimizer state")
        optimizer.load_state_dict(ckpt["optimizer"])
    set_rng_state(ckpt["rng"]["tinygen"])
    set_rng_states(ckpt["rng"].get("tinygen_devices", {}))  # the GPU's (CounterRNG) state
    for name, g in (rngs or {}).items():
        g.bit_generator.state = ckpt["rng"][name]
    return ckpt

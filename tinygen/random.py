"""Global random state, one generator per device, reset by `tg.manual_seed(seed)`.

Everything random in tinygen (randn, dropout, parameter init, sampling) draws from
`generator(device)`, so one seed makes a whole run repeatable. The CPU generator's state
can be saved and restored (`get_rng_state` / `set_rng_state`), which is what lets a
resumed training run continue exactly as if it had never stopped.
"""

import numpy as np

from tinygen.backend import check_device, default_rng

_seed = 0
_generators = {}


def manual_seed(seed):
    global _seed
    _seed = int(seed)
    _generators.clear()


def generator(device="cpu"):
    device = check_device(device)
    if device not in _generators:
        _generators[device] = default_rng(device, _seed)
    return _generators[device]


def get_rng_state():
    """The CPU generator's state: a JSON-serialisable dict."""
    return generator("cpu").bit_generator.state


def set_rng_state(state):
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    _generators["cpu"] = rng

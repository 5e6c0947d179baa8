"""Global random state, one generator per device, reset by `tg.manual_seed(seed)`.

Everything random in tinygen (randn, dropout, parameter init, sampling) draws from
`generator(device)`, so one seed makes a whole run repeatable. On the CPU that is NumPy's
PCG64. On the GPU it is `CounterRNG`, a counter-based generator (splitmix64 of a counter,
Steele, Lea & Flood 2014, "Fast splittable pseudorandom number generators") written with
whole-array operations: its whole state is (seed, counter), so it is saved in checkpoints and
a resumed GPU run draws exactly the numbers it would have drawn (CuPy's own cuRAND
generators keep their state in device memory that cannot be saved), and it gives the same
numbers on every array module. Dropout masks come from `dropout_generator(device)`, a
CounterRNG on every device, so they are the same on the CPU and the GPU.
`get_rng_state` / `set_rng_state` hold the CPU state;
`get_rng_states` / `set_rng_states` every device's.
"""

import numpy as np

from tinygen.backend import check_device, module_for

_seed = 0
_generators = {}
_GOLDEN, _MIX1, _MIX2 = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9),
                         np.uint64(0x94D049BB133111EB))


class CounterRNG:
    """Random numbers as a pure function of (seed, counter): value i of the stream is
    splitmix64(seed·φ + i·φ). Each draw uses the next n counters. Methods follow
    numpy.random.Generator's names: random, standard_normal, integers."""

    def __init__(self, seed, xp, counter=0):
        self.seed, self.xp, self.counter = int(seed), xp, int(counter)

    def _bits(self, n):
        """n uint64 values, the next n of the stream."""
        xp = self.xp
        start = (self.seed * 0x9E3779B97F4A7C15 + self.counter) % 2**64
        self.counter += n
        z = (xp.arange(n, dtype=np.uint64) + np.uint64(start)) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        return z ^ (z >> np.uint64(31))

    def random(self, size=None, dtype=np.float64):
        """Uniform in [0, 1): the top 53 (float64) or 24 (float32) bits, exactly."""
        shape = () if size is None else (size,) if isinstance(size, int) else tuple(size)
        n = int(np.prod(shape))
        if np.dtype(dtype) == np.float32:
            u = (self._bits(n) >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)
        else:
            u = (self._bits(n) >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)
        return u.reshape(shape).astype(dtype, copy=False)

    def standard_normal(self, size=None, dtype=np.float64):
        """Box-Muller: sqrt(-2 ln u1) cos(2π u2), u1 in (0, 1]."""
        shape = () if size is None else (size,) if isinstance(size, int) else tuple(size)
        n, xp = int(np.prod(shape)), self.xp
        u = self.random(2 * n)
        z = xp.sqrt(-2.0 * xp.log(1.0 - u[:n])) * xp.cos((2.0 * np.pi) * u[n:])
        return z.reshape(shape).astype(dtype, copy=False)

    def integers(self, low, high=None, size=None, dtype=np.int64):
        if high is None:
            low, high = 0, low
        shape = () if size is None else (size,) if isinstance(size, int) else tuple(size)
        span = np.uint64(high - low)
        r = (self._bits(int(np.prod(shape))) % span).astype(np.int64) + int(low)
        return r.reshape(shape).astype(dtype, copy=False)

    def permutation(self, n):
        """A random permutation of range(n) (argsort of random keys; CuPy has none)."""
        return self.xp.argsort(self._bits(n))

    @property
    def state(self):
        return {"seed": self.seed, "counter": self.counter}


def manual_seed(seed):
    global _seed
    _seed = int(seed)
    _generators.clear()


def generator(device="cpu"):
    device = check_device(device)
    if device not in _generators:
        _generators[device] = (np.random.default_rng(_seed) if device == "cpu"
                               else CounterRNG(_seed, module_for(device)))
    return _generators[device]


def dropout_generator(device="cpu"):
    """The CounterRNG that draws dropout masks on `device`: the same stream on every device
    (seeded by tg.manual_seed), so a model drops the same units on the CPU and the GPU."""
    device = check_device(device)
    key = "dropout:" + device
    if key not in _generators:
        _generators[key] = CounterRNG(_seed + 0x5EED, module_for(device))
    return _generators[key]


def get_rng_state():
    """The CPU generator's state: a JSON-serialisable dict."""
    return generator("cpu").bit_generator.state


def set_rng_state(state):
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    _generators["cpu"] = rng


def get_rng_states():
    """Every device's generator state that has been used, by device: JSON-serialisable."""
    generator("cpu")
    return {d: (g.bit_generator.state if d == "cpu" else g.state)
            for d, g in _generators.items()}


def set_rng_states(states):
    for key, state in states.items():
        if key == "cpu":
            set_rng_state(state)
        else:
            device = key.split(":")[-1]  # "cuda", or "dropout:cpu" / "dropout:cuda"
            _generators[key] = CounterRNG(state["seed"], module_for(device), state["counter"])

"""Checks that a config dataclass runs in its __post_init__, so a bad value fails when the
config is made, before any work, with one message: "<field>=<value>: <what is allowed>".
(A demo's command line turns the ValueError into one line on stderr.)"""


def _fail(name, value, allowed):
    raise ValueError(f"{name}={value!r}: {allowed}")


def check_positive(cfg, *names):
    """Each field is a number > 0 (sizes, counts, steps)."""
    for name in names:
        value = getattr(cfg, name)
        if isinstance(value, bool) or not value > 0:
            _fail(name, value, "must be > 0")


def check_nonnegative(cfg, *names):
    """Each field is a number >= 0 (coefficients, learning rates, weight decay)."""
    for name in names:
        value = getattr(cfg, name)
        if isinstance(value, bool) or not value >= 0:
            _fail(name, value, "must be >= 0")


def check_probability(cfg, *names, closed=False):
    """Each field is a probability in [0, 1), or [0, 1] with closed=True (a dropout of 1
    would zero everything, so dropout uses the half-open range)."""
    for name in names:
        value = getattr(cfg, name)
        ok = 0 <= value <= 1 if closed else 0 <= value < 1
        if isinstance(value, bool) or not ok:
            _fail(name, value, "must be in [0, 1]" if closed else "must be in [0, 1)")


def check_choice(cfg, name, choices):
    value = getattr(cfg, name)
    if value not in choices:
        _fail(name, value, "must be one of " + ", ".join(map(repr, choices)))


def check_divisible(cfg, name, by):
    """getattr(cfg, name) is a multiple of getattr(cfg, by) (n_embd of n_head)."""
    value, divisor = getattr(cfg, name), getattr(cfg, by)
    if value % divisor:
        _fail(name, value, f"must be divisible by {by}={divisor}")

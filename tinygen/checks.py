"""Checks that a config dataclass runs in its __post_init__, so a bad value fails when the
config is made, before any work, with one message: "<field>=<value>: <what is allowed>".
(A demo's command line turns the ValueError into one line on stderr.)"""

import dataclasses


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


# ---- what a field allows (dataclass metadata, checked by check_fields)  ----------------------------------------------------------------------
def one_of(default, *choices):
    """A field whose value must be one of `default, *choices` (its flag lists them)."""
    return dataclasses.field(default=default, metadata={"choices": [default, *choices]})


def at_least(default, low):
    """A field whose value must be >= low (None is allowed: "use the default")."""
    return dataclasses.field(default=default, metadata={"min": low})


def between(default, low, high):
    """A field whose value must lie in [low, high]."""
    return dataclasses.field(default=default, metadata={"min": low, "max": high})


def check_fields(config):
    """Raise ValueError("<field>=<value>: <what is allowed>") for the first field of the
    dataclass `config` whose value its metadata does not allow."""
    for f in dataclasses.fields(config):
        value, meta = getattr(config, f.name), f.metadata
        if value is None:
            continue
        if "choices" in meta and value not in meta["choices"]:
            raise ValueError(f"{f.name}={value}: must be one of "
                             + ", ".join(map(repr, meta["choices"])))
        low, high = meta.get("min"), meta.get("max")
        if low is not None and high is not None and not low <= value <= high:
            raise ValueError(f"{f.name}={value}: must lie in [{low}, {high}]")
        if low is not None and not value >= low:  # `not >=` also catches NaN
            raise ValueError(f"{f.name}={value}: must be >= {low}")


def require(condition, field, value, allowed):
    """For checks between fields: raise ValueError("<field>=<value>: <allowed>") unless
    `condition`."""
    if not condition:
        raise ValueError(f"{field}={value}: {allowed}")

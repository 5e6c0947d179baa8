"""Command lines built from a config @dataclass: one flag per field, its default and type
from the field (CleanRL's habit), so a demo's config and its flags never drift apart.

A field says what values it allows in its metadata (tinygen/checks.py: one_of, at_least,
between), and the config checks them in `__post_init__`, so a bad value fails when the
config is made, before any work:

    @dataclass
    class TrainConfig:
        tokenizer: str = one_of("auto", "char", "bpe")
        n_layer: int = at_least(4, 1)
        dropout: float = between(0.0, 0.0, 1.0)

        def __post_init__(self):
            check_fields(self)   # raises ValueError("n_layer=0: must be >= 1")

`parse_config` turns such a ValueError (from the demo's config or a library config it
builds, which raise in the same "<field>=<value>: <what is allowed>" form) into one line
on stderr naming the flag, and exit status 2 — no traceback.
"""

import argparse
import dataclasses
import re
import sys


# ---- the command line --------------------------------------------------------------------------
class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag gives one line on stderr (no usage block) and exit code 2."""

    def error(self, message):
        fail(self.prog, message)


def fail(prog, message):
    """Print `prog: error: message (see --help)` as one line on stderr and exit 2."""
    message = " ".join(str(message).split())
    sys.stderr.write(f"{prog}: error: {message} (see --help)\n")
    raise SystemExit(2)


_FIELD_ERROR = re.compile(r"^(\w+)=(.*?): (.*)$", re.DOTALL)


def or_exit(make, config_cls=None, prog=None):
    """Call `make()` (which builds configs) and return its result; a ValueError it raises
    becomes one line on stderr and exit code 2. A message in the "<field>=<value>: ..."
    form about a field of `config_cls` names the flag: `--field=value: ...`."""
    prog = prog or OneLineParser().prog
    try:
        return make()
    except ValueError as e:
        message = str(e)
        match = _FIELD_ERROR.match(message)
        names = {f.name for f in dataclasses.fields(config_cls)} if config_cls else set()
        if match and match.group(1) in names:
            message = f"--{match.group(1)}={match.group(2)}: {match.group(3)}"
        fail(prog, message)


def config_parser(config_cls, description=""):
    """An ArgumentParser with `--name` for every field of `config_cls`. Booleans get
    `--name` / `--no-name`; a field's `metadata={"choices": [...]}` limits its values."""
    parser = OneLineParser(description=(description or "").strip().splitlines()[0]
                           if description else None)
    for f in dataclasses.fields(config_cls):
        if f.type is bool or f.type == "bool":
            parser.add_argument("--" + f.name, action=argparse.BooleanOptionalAction,
                                default=f.default)
        else:
            kind = f.type if isinstance(f.type, type) else type(f.default)
            parser.add_argument("--" + f.name, type=kind, default=f.default,
                                choices=f.metadata.get("choices"))
    return parser


def parse_config(config_cls, description="", argv=None, smoke=None):
    """Parse `argv` (default: sys.argv[1:]) into an instance of `config_cls`. With `smoke`
    (a dict of field values) and `--smoke` given, those values become the defaults: a flag
    given explicitly still wins (`--smoke --max_iters 4` runs 4 iterations).
    The config validates itself in __post_init__; a bad value exits as `or_exit` says."""
    parser = config_parser(config_cls, description)
    args = vars(parser.parse_args(argv))
    if smoke and args.get("smoke"):
        parser.set_defaults(**smoke)
        args = vars(parser.parse_args(argv))

    def make():
        return config_cls(**args)

    return or_exit(make, config_cls, parser.prog)

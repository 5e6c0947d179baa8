"""Command lines built from a config @dataclass: one flag per field, its default and type
from the field (CleanRL's habit), so a demo's config and its flags never drift apart."""

import argparse
import dataclasses


def config_parser(config_cls, description=""):
    """An ArgumentParser with `--name` for every field of `config_cls`. Booleans get
    `--name` / `--no-name`; a field's `metadata={"choices": [...]}` limits its values."""
    parser = argparse.ArgumentParser(description=(description or "").strip().splitlines()[0]
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


def parse_config(config_cls, description=""):
    """Parse sys.argv into an instance of `config_cls`."""
    return config_cls(**vars(config_parser(config_cls, description).parse_args()))

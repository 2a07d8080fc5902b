"""Typed config dataclasses as argparse options, the one helper every command group uses (cleanrl-style: the CLI and the Python API never disagree)."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from typing import Any

from .common import add_bool_flag

_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, *, skip: Sequence[str] = (),
                       defaults: dict[str, Any] | None = None) -> None:
    """One ``--field-name`` option per dataclass field, typed and documented from the field;
    ``defaults`` replaces some fields' defaults (a command with another recipe). The default is
    shown once, by :class:`~drkit.cli.common.HelpFormatter`, unless the field's help says it."""
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        type_name = str(f.type).replace(" | None", "").replace("Optional[", "").rstrip("]")
        kind = _TYPES.get(type_name, str)
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "").replace("%", "%%")  # argparse %-formats help
        default = f.default if f.default is not dataclasses.MISSING else None
        if defaults and f.name in defaults:
            default = defaults[f.name]
        if kind is bool:
            add_bool_flag(parser, flag, default=default, help=help_text, dest=f.name)
        else:
            parser.add_argument(flag, type=kind, default=default, dest=f.name, help=help_text)


def config_from_args(cls: type, args: argparse.Namespace) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(args).items() if k in names})


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB"

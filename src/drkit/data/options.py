"""Options of a dataset name, written as a URL query: ``KIND:ARG?key=value&key=value``.

One syntax for every source (``imagefolder:PATH?channels=3``, ``wds:PATTERN?label=cls``,
``hf:PATH:train?image=img``), parsed in one place so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import DataError

__all__ = ["split_options", "parse_channels", "parse_flag"]


def split_options(kind: str, arg: str, allowed: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """``ARG?key=value&...`` -> (ARG, {key: value}); ``allowed`` maps each known key to the help
    shown when an unknown one is given. A ``?`` not followed by ``key=value`` pairs is part of ARG
    (a glob's ``?``), as :func:`drkit.data.folders.folder_options` reads it."""
    head, sep, query = arg.rpartition("?")
    items = [q.partition("=") for q in query.split("&")] if sep else []
    if not items or not all(eq and key for key, eq, _ in items):
        return arg, {}
    options: dict[str, str] = {}
    for key, _, value in items:
        if key not in allowed:
            known = "; ".join(f"{k}={v}" for k, v in allowed.items())
            raise DataError(f"{kind}: unknown option {key}={value!r}; the options are {known}")
        if key in options:
            raise DataError(f"{kind}: option {key} given twice")
        options[key] = value
    return head, options


def parse_channels(kind: str, value: str | None) -> int | None:
    if value is None:
        return None
    if value not in ("1", "3"):
        raise DataError(f"{kind}: channels must be 1 (gray) or 3 (RGB), got {value!r}")
    return int(value)


def parse_flag(kind: str, key: str, value: str | None, default: bool) -> bool:
    if value is None:
        return default
    v = value.lower()
    if v not in ("1", "0", "true", "false", "yes", "no"):
        raise DataError(f"{kind}: {key} must be 0 or 1, got {value!r}")
    return v in ("1", "true", "yes")

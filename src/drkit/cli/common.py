"""What every ``drkit`` subcommand shares: the global options (``-v``/``-q``, accepted before and
after the subcommand), one help formatter that shows each default once, ``--json`` output and
status lines on stderr (stdout carries only the result, so ``--json`` output can be piped)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..evaluate.evaluation import to_jsonable

__all__ = ["DATA_HELP", "HelpFormatter", "add_command", "add_bool_flag", "add_json_flag", "global_options", "print_json",
           "status"]

DATA_HELP = ("digits, fashion-mnist, imagefolder:PATH, npz:PATH, wds:PATTERN (webdataset tar shards, e.g. "
             "wds:/data/train-{000000..000009}.tar) or hf:PATH_OR_NAME[:split] (Hugging Face datasets)")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Appends ``(default: X)`` to an option's help once: not when the help already says its
    default, nor for options without one (None, False, suppressed); booleans show on/off."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (not action.option_strings or "default" in text or default is None or default is False
                or default is argparse.SUPPRESS):
            return text
        shown = ("on" if default else "off") if isinstance(default, bool) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})".lstrip()


def global_options(*, suppress: bool) -> argparse.ArgumentParser:
    """The options every command takes. The top-level parser gets them with real defaults, each
    subcommand (``suppress=True``) with suppressed ones, so ``drkit -v train ...`` is not undone by
    the subparser writing its own default over the value given before the subcommand."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("global options (before or after the command)")
    default: Any = argparse.SUPPRESS if suppress else False
    g.add_argument("-v", "--verbose", action="store_true", default=default, help="log progress details (INFO)")
    g.add_argument("-q", "--quiet", action="store_true", default=default,
                   help="no progress bars or status lines on stderr (warnings and errors still show)")
    return p


_SUBCOMMAND_OPTIONS = global_options(suppress=True)


def add_command(sub: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    """A subcommand parser with the global options and drkit's help formatter."""
    return sub.add_parser(name, parents=[_SUBCOMMAND_OPTIONS], formatter_class=HelpFormatter, **kwargs)


def add_bool_flag(parser: Any, flag: str, *, default: bool | None, help: str, **kwargs: Any) -> argparse.Action:
    """``--flag/--no-flag``. Python 3.9-3.10's BooleanOptionalAction appends its own
    ``(default: ...)`` to the help, doubling :class:`HelpFormatter`'s; the help is set back."""
    action = parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help, **kwargs)
    action.help = help
    return action


def add_json_flag(parser: argparse.ArgumentParser, what: str = "the result") -> None:
    parser.add_argument("--json", action="store_true",
                        help=f"print {what} as JSON on stdout (and nothing else there)")


def print_json(value: Any) -> None:
    """Strict JSON on stdout: numpy values as Python, non-finite floats as null, paths as strings."""
    print(json.dumps(to_jsonable(value), indent=2, allow_nan=False, default=str))


def status(args: argparse.Namespace, line: str) -> None:
    """A status line on stderr, unless ``--quiet``."""
    if not args.quiet:
        print(line, file=sys.stderr, flush=True)

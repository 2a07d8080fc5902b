"""The ``drkit`` parser, its global options, exit codes and ``main``. The commands live in one
module per group; each subcommand's options come from a typed config dataclass (cleanrl-style),
so the CLI and the Python API never disagree.

    drkit teach | train                 (drkit.cli.train_commands)
    drkit reinforce | info | verify     (drkit.cli.store_commands)
    drkit eval | compare | audit        (drkit.cli.eval_commands)
    drkit demo                          (drkit.cli.demo_command)
    drkit synth fit-generator | run     (drkit.cli.synth_commands)
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .._version import __version__
from ..errors import DrkitError
from .common import HelpFormatter, global_options
from .demo_command import add_demo_command
from .eval_commands import add_eval_commands
from .store_commands import add_store_commands
from .synth_commands import add_synth_commands
from .train_commands import add_train_commands

__all__ = ["EXIT_OK", "EXIT_ERROR", "EXIT_USAGE", "EXIT_INTERRUPTED", "build_parser", "main"]

EXIT_OK = 0  # done
EXIT_ERROR = 1  # drkit could not do it (DrkitError): bad setting or data, store mismatch or corrupt, teacher error
EXIT_USAGE = 2  # argparse's: unknown option, missing or malformed argument
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT); rerun the same command to resume

EPILOG = f"""\
Options -v/--verbose and -q/--quiet go before or after the command. With --json a command prints
only its JSON result on stdout; progress and status lines go to stderr.

exit codes:
  {EXIT_OK}    success
  {EXIT_ERROR}    drkit's own errors: invalid settings, bad or mismatched data, a store made with other
       settings or corrupt, an unusable teacher (the message on stderr says what to do)
  {EXIT_USAGE}    usage errors: unknown option, missing or malformed argument (argparse)
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C): rerun the same command to resume

Run `drkit COMMAND --help` for a command's options; docs/cli.md for the conventions."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="drkit", description="Improve an image-classification dataset once.",
                                epilog=EPILOG, formatter_class=HelpFormatter,
                                parents=[global_options(suppress=False)])
    p.add_argument("--version", action="version", version=f"drkit {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_store_commands(sub)
    add_train_commands(sub)
    add_demo_command(sub)
    add_eval_commands(sub)
    add_synth_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``drkit``; returns the exit code (argparse's usage errors exit 2 by ``SystemExit``)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except DrkitError as e:
        print(f"drkit {args.command}: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"\ndrkit {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

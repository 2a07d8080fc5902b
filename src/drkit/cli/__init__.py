"""The ``drkit`` command line: one module per command group, options from typed config dataclasses.

- :mod:`~drkit.cli.main`: the parser, global options, exit codes, ``main``;
- :mod:`~drkit.cli.common`: what every command shares (global ``-v``/``-q``, help formatter,
  ``--json``, status lines); :mod:`~drkit.cli.args`: config dataclass fields as argparse options;
- :mod:`~drkit.cli.store_commands` (reinforce, info, verify), :mod:`~drkit.cli.train_commands`
  (train, teach), :mod:`~drkit.cli.demo_command` (demo), :mod:`~drkit.cli.eval_commands` (eval,
  compare, audit), :mod:`~drkit.cli.synth_commands` (synth).

Conventions (exit codes, ``--json``, progress in logs): docs/cli.md.
"""

from .main import build_parser, main

__all__ = ["main", "build_parser"]

"""One progress-bar factory for every long loop: frequent refreshes on a terminal, a line every
few seconds in logs and CI (tqdm's default floods a non-terminal with carriage returns)."""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(total: int, *, desc: str, unit: str, enabled: bool = True) -> Any:
    from tqdm.auto import tqdm

    tty = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True,
                mininterval=0.1 if tty else 10.0)

"""One progress-bar factory for every long loop: tqdm on a terminal; plain lines in logs and CI.

tqdm redraws its bar with carriage returns, which a file or a CI log keeps as thousands of lines
(a 26-minute run's log was mostly bar). When stderr is not a terminal the bar is a
:class:`LineProgress` instead: one line ``desc: n/total (pct) rate unit/s, ETA m:ss`` at most every
``interval`` seconds and one when it closes. Callers use ``update(n)``, ``set_postfix(...)`` and
``close()`` (or ``with``), the part of tqdm's interface both objects share.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from tqdm.auto import tqdm

__all__ = ["progress_bar", "LineProgress"]


def progress_bar(total: int, *, desc: str, unit: str, enabled: bool = True, stream: TextIO | None = None,
                 interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> Any:
    """A progress bar on ``stream`` (default: ``sys.stderr``): tqdm on a terminal (or in a Jupyter
    kernel, where tqdm draws a widget), else a :class:`LineProgress`; nothing when not ``enabled``."""
    stream = sys.stderr if stream is None else stream
    if not enabled:
        return _NoProgress()
    if _isatty(stream) or "ipykernel" in sys.modules:
        return tqdm(total=total, desc=desc, unit=unit, file=stream, dynamic_ncols=True, mininterval=0.1)
    return LineProgress(total, desc=desc, unit=unit, stream=stream, interval=interval, clock=clock)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


class _NoProgress:
    """What a disabled bar is: the same methods, doing nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class LineProgress(_NoProgress):
    """Progress as plain lines for a log: ``desc: n/total (pct) rate unit/s, ETA m:ss[, postfix]``,
    at most one every ``interval`` seconds of ``clock``, and a last one (with the elapsed time)
    on ``close``."""

    def __init__(self, total: int | None, *, desc: str, unit: str, stream: TextIO, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.desc, self.unit, self.stream = total, desc, unit, stream
        self.interval, self.clock = interval, clock
        self.n = 0
        self.postfix = ""
        self._start = self._last = clock()
        self._closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self._last >= self.interval:
            self._last = now
            self._write(now, final=False)

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._write(self.clock(), final=True)

    def format(self, now: float, *, final: bool = False) -> str:
        elapsed = now - self._start
        done = f"{self.n:,}"
        if self.total:
            done += f"/{self.total:,} ({self.n / self.total:.0%})"
        rate = self.n / elapsed if elapsed > 0 else None
        parts = [f"{self.desc}: {done}", f"{_rate(rate)} {self.unit}/s"]
        if final:
            parts[-1] += f", {_clock(elapsed)} elapsed"
        elif self.total and rate:
            parts[-1] += f", ETA {_clock(max(self.total - self.n, 0) / rate)}"
        line = " ".join(parts)
        return f"{line}, {self.postfix}" if self.postfix else line

    def _write(self, now: float, *, final: bool) -> None:
        # the progress stream itself (stderr), as tqdm writes its bar: not a log record
        self.stream.write(self.format(now, final=final) + "\n")
        self.stream.flush()


def _rate(rate: float | None) -> str:
    if rate is None:
        return "?"
    return f"{rate:.0f}" if rate >= 100 else f"{rate:.1f}" if rate >= 1 else f"{rate:.2f}"


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"

"""drkit._progress: tqdm on a terminal, a plain line every ~10 s elsewhere, nothing when disabled."""

from __future__ import annotations

import io

from tqdm.auto import tqdm

from drkit._progress import LineProgress, progress_bar


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _bar(total: int = 100, **kwargs):
    stream, clock = io.StringIO(), FakeClock()
    bar = progress_bar(total, desc="reinforce", unit="img", stream=stream, clock=clock, **kwargs)
    return bar, stream, clock


def test_a_log_gets_one_plain_line_per_interval_and_one_at_close():
    bar, stream, clock = _bar()
    assert isinstance(bar, LineProgress)
    for _ in range(9):  # 9 s: nothing yet
        clock.now += 1
        bar.update(2)
    assert stream.getvalue() == ""
    clock.now += 1
    bar.update(2)  # 20 images in 10 s
    assert stream.getvalue() == "reinforce: 20/100 (20%) 2.0 img/s, ETA 0:40\n"
    clock.now += 5
    bar.update(5)
    assert stream.getvalue().count("\n") == 1  # at most one line per interval
    clock.now += 5
    bar.update(75)
    lines = stream.getvalue().splitlines()
    assert lines[-1] == "reinforce: 100/100 (100%) 5.0 img/s, ETA 0:00"
    bar.close()
    bar.close()  # once
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and lines[-1] == "reinforce: 100/100 (100%) 5.0 img/s, 0:20 elapsed"
    assert "\r" not in stream.getvalue()


def test_postfix_rates_and_long_runs():
    bar, stream, clock = _bar(total=10_000, interval=60.0)
    bar.set_postfix(loss="0.512", refresh=False)
    clock.now += 3600
    bar.update(36)
    assert stream.getvalue() == "reinforce: 36/10,000 (0%) 0.01 img/s, ETA 276:46:40, loss=0.512\n"
    bar.set_postfix({"val": "0.9"}, reward="+0.01")
    clock.now += 7200
    bar.update(2_000)
    assert stream.getvalue().splitlines()[-1].endswith("(20%) 0.19 img/s, ETA 11:44:05, val=0.9, reward=+0.01")


def test_close_without_progress_and_context_manager():
    bar, stream, _ = _bar(total=0)
    with bar:
        pass
    assert stream.getvalue() == "reinforce: 0 ? img/s, 0:00 elapsed\n"


def test_disabled_writes_nothing():
    for stream in (io.StringIO(), Terminal()):
        bar = progress_bar(5, desc="x", unit="step", enabled=False, stream=stream)
        with bar:
            bar.update(5)
            bar.set_postfix(loss="1", refresh=False)
        assert stream.getvalue() == ""


def test_a_terminal_keeps_tqdm():
    stream = Terminal()
    bar = progress_bar(3, desc="train", unit="step", stream=stream)
    assert isinstance(bar, tqdm)
    bar.update(3)
    bar.set_postfix(loss="0.1", refresh=False)
    bar.close()
    assert "train" in stream.getvalue() and "3/3" in stream.getvalue()


def test_a_stream_without_isatty_is_not_a_terminal():
    class Sink:
        def __init__(self) -> None:
            self.parts: list[str] = []

        def write(self, s: str) -> None:
            self.parts.append(s)

        def flush(self) -> None:
            pass

    sink = Sink()
    bar = progress_bar(2, desc="d", unit="u", stream=sink)  # type: ignore[arg-type]
    assert isinstance(bar, LineProgress)
    bar.update(2)
    bar.close()
    assert "".join(sink.parts).startswith("d: 2/2 (100%)")

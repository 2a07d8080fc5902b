"""benchmarks/_common.py: what every benchmark script shares."""

from dataclasses import dataclass, field

import pytest

from benchmarks._common import harness_command, override, parse_field, write_report


def test_a_rewritten_report_keeps_its_hand_written_discussion(tmp_path):
    path = tmp_path / "r.md"
    write_report(path, "# numbers\n\n1\n")
    assert path.read_text() == "# numbers\n\n1\n"  # a new file: the generated part only
    path.write_text(path.read_text() + "\n## Discussion\n\nwhy 1\n")
    write_report(path, "# numbers\n\n2\n")
    assert path.read_text() == "# numbers\n\n2\n\n## Discussion\n\nwhy 1\n"  # new numbers, old prose


@dataclass(frozen=True)
class _Inner:
    steps: int = 10
    device: str | None = None


@dataclass(frozen=True)
class _Outer:
    inner: _Inner = field(default_factory=_Inner)
    flag: bool = False
    scale: float | None = None


def test_set_reaches_nested_fields_and_parses_bools_and_optional_numbers():
    o = override(_Outer(), ["inner.steps=3000", "inner.device=cpu", "flag=true", "scale=0.5"])
    assert o == _Outer(inner=_Inner(steps=3000, device="cpu"), flag=True, scale=0.5)
    assert parse_field(_Outer(), "scale", "none") is None
    for bad in ("flag=maybe", "inner.step=3", "flag.x=1", "inner.steps=1.5"):
        with pytest.raises(SystemExit, match="--set"):
            override(_Outer(), [bad])


def test_harness_command_names_profile_overrides_and_out():
    assert harness_command("benchmarks.x", "full", [], None) == "python -m benchmarks.x"
    assert harness_command("benchmarks.x", "quick", ["a=1"], None) == "python -m benchmarks.x --quick --set a=1"
    assert (harness_command("benchmarks.x", "standard", ["a=1", "b=2"], "runs/y")
            == "python -m benchmarks.x --profile standard --set a=1 --set b=2 --out runs/y")

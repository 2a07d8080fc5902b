"""benchmarks/_common.py: what every benchmark script shares."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _common import write_report  # noqa: E402


def test_a_rewritten_report_keeps_its_hand_written_discussion(tmp_path):
    path = tmp_path / "r.md"
    write_report(path, "# numbers\n\n1\n")
    assert path.read_text() == "# numbers\n\n1\n"  # a new file: the generated part only
    path.write_text(path.read_text() + "\n## Discussion\n\nwhy 1\n")
    write_report(path, "# numbers\n\n2\n")
    assert path.read_text() == "# numbers\n\n2\n\n## Discussion\n\nwhy 1\n"  # new numbers, old prose

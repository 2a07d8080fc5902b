"""The README's promise, counted against a plain torchvision loop: training on a reinforced dataset
changes 4 lines (dataset, set_epoch, the unpacked triple, the loss) and drops your transform."""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import drkit
from drkit.models import SmallCNN

EXAMPLES = Path(__file__).parents[1] / "examples"


def _body(name: str) -> list[str]:
    text = (EXAMPLES / name).read_text()
    return text[text.index('"""', 3) + 3:].splitlines()  # the docstrings differ in wording


def test_reinforced_example_changes_exactly_the_marked_lines_of_a_plain_torchvision_loop():
    plain, reinforced = _body("train_plain.py"), _body("train_reinforced.py")
    diff = list(difflib.unified_diff(plain, reinforced, lineterm="", n=0))
    added = [ln[1:] for ln in diff if ln.startswith("+") and not ln.startswith("+++")]
    removed = [ln[1:] for ln in diff if ln.startswith("-") and not ln.startswith("---")]
    assert all("# drkit" in ln for ln in added), added
    assert len(added) == 4, added
    # what goes: the user's transform and dataset wrapper (marked plain), and the old loop lines
    # that the marked ones replace: the dataset, the unpacked pair and the loss
    unmarked = [ln for ln in removed if "# plain" not in ln and ln.strip()]
    assert len(unmarked) == 2 and "for x, label in loader" in unmarked[0] and "cross_entropy" in unmarked[1], unmarked
    assert "torchvision" in "\n".join(plain) and "FreshAugmented" not in "\n".join(plain)


@pytest.mark.slow
def test_both_examples_run(tmp_path):
    import torch

    torch.manual_seed(0)
    store = drkit.reinforce("digits", SmallCNN(1, 10, width=4), tmp_path / "digits+", num_augs=2, topk=10,
                            num_workers=0, progress=False)
    env = {**os.environ, "EPOCHS": "1", "STORE": str(store.root)}
    for name in ("train_plain.py", "train_reinforced.py"):
        r = subprocess.run([sys.executable, str(EXAMPLES / name)], env=env, capture_output=True, text=True,
                           timeout=300, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert "test top-1" in r.stdout

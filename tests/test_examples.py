"""The README's promise: training on a reinforced dataset is a change of at most 3 lines."""

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


def test_plain_and_reinforced_examples_differ_in_at_most_3_lines():
    plain = (EXAMPLES / "train_plain.py").read_text().splitlines()
    reinforced = (EXAMPLES / "train_reinforced.py").read_text().splitlines()
    changed = [ln for ln in difflib.unified_diff(plain, reinforced, lineterm="", n=0)
               if ln.startswith("-") and not ln.startswith("---")]
    assert 1 <= len(changed) <= 3, changed


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

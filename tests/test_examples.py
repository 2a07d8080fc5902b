"""The README's promise, counted against plain loops: training on a reinforced dataset changes 4
lines of a plain torchvision loop or of an Accelerate loop (dataset, set_epoch, the unpacked triple,
the loss) and 5 of a Lightning module (set_epoch is a hook), and drops your transform."""

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
# (plain, reinforced, lines marked "# drkit", the plain loop lines those replace)
PAIRS = [
    ("train_plain.py", "train_reinforced.py", 4, ["for x, label in loader", "cross_entropy"]),
    ("train_accelerate_plain.py", "train_accelerate.py", 4, ["for x, label in loader", "cross_entropy"]),
    ("train_lightning_plain.py", "train_lightning.py", 5, ["x, label = batch", "cross_entropy"]),
]


def _body(name: str) -> list[str]:
    text = (EXAMPLES / name).read_text()
    return text[text.index('"""', 3) + 3:].splitlines()  # the docstrings differ in wording


@pytest.mark.parametrize("plain_name, reinforced_name, changed, replaced", PAIRS, ids=[p[1] for p in PAIRS])
def test_reinforced_example_changes_exactly_the_marked_lines_of_a_plain_loop(plain_name, reinforced_name, changed,
                                                                            replaced):
    plain, reinforced = _body(plain_name), _body(reinforced_name)
    diff = list(difflib.unified_diff(plain, reinforced, lineterm="", n=0))
    added = [ln[1:] for ln in diff if ln.startswith("+") and not ln.startswith("+++") and ln[1:].strip()]
    removed = [ln[1:] for ln in diff if ln.startswith("-") and not ln.startswith("---")]
    assert all("# drkit" in ln for ln in added), added
    assert len(added) == changed, added
    # what goes: the user's transform and dataset wrapper (marked plain), and the old loop lines
    # that the marked ones replace: the unpacked pair and the loss
    unmarked = [ln for ln in removed if "# plain" not in ln and ln.strip()]
    assert len(unmarked) == len(replaced) and all(r in u for r, u in zip(replaced, unmarked, strict=True)), unmarked
    assert "torchvision" in "\n".join(plain) and "FreshAugmented" not in "\n".join(plain)
    assert f"{changed} lines" in (EXAMPLES / reinforced_name).read_text()  # the docstring says the count


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    return drkit.reinforce("digits", SmallCNN(1, 10, width=4), tmp_path_factory.mktemp("store") / "digits+",
                           num_augs=2, topk=10, num_workers=0, progress=False)


def _run(names: tuple[str, ...], store, cwd: Path) -> None:
    env = {**os.environ, "EPOCHS": "1", "STORE": str(store.root)}
    for name in names:
        r = subprocess.run([sys.executable, str(EXAMPLES / name)], env=env, capture_output=True, text=True,
                           timeout=300, cwd=cwd)
        assert r.returncode == 0, r.stderr[-3000:]
        assert "test top-1" in r.stdout


@pytest.mark.slow
def test_both_examples_run(tiny_store, tmp_path):
    _run(("train_plain.py", "train_reinforced.py"), tiny_store, tmp_path)


@pytest.mark.slow
def test_accelerate_examples_run(tiny_store, tmp_path):
    pytest.importorskip("accelerate")  # the DR side only: the plain one differs by the lines counted above
    _run(("train_accelerate.py",), tiny_store, tmp_path)


@pytest.mark.slow
def test_lightning_examples_run(tiny_store, tmp_path):
    pytest.importorskip("lightning")
    _run(("train_lightning.py",), tiny_store, tmp_path)
    assert not list(tmp_path.iterdir())  # no logs or checkpoints left behind

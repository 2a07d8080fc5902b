"""The shard journal: a run records each shard in O(1) (an appended line), folds the journal into
the manifest a logarithmic number of times, and a run interrupted between folds resumes with every
shard the journal lists; damaged journal lines cost a recomputed shard, never a wrong store."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import tiny_teacher
from torch import nn

import drkit
from drkit import StoreError
from drkit.reinforcement import session as session_mod
from drkit.reinforcement.journal import JOURNAL, ShardJournal, read_journal

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest

RUN = {"policy": "cropflip", "num_augs": 2, "topk": 3, "shard_size": 2, "teacher_batch": 8,
       "batch_size": 8, "num_workers": 0, "progress": False}  # 60 digits: 30 shards


class Interrupting(nn.Module):
    """A teacher that raises KeyboardInterrupt on forward number ``at`` (forward 1 is the probe,
    then one forward per shard of 2 samples × 2 augmentations); with ``at=None`` it never does (the
resuming run: the same teacher class, so the same teacher description)."""

    def __init__(self, model: nn.Module, at: int | None = None) -> None:
        super().__init__()
        self.model, self.at, self.calls = model, at, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.at is not None and self.calls >= self.at:
            raise KeyboardInterrupt
        return self.model(x)


def _entry(i: int) -> dict:
    return {"index": i, "start": 2 * i, "stop": 2 * i + 2, "file": f"shard-{i:05d}.npy", "bytes": 100,
            "sha256": "0" * 64}


def test_journal_lines_round_trip_and_damaged_lines_are_skipped(tmp_path, caplog):
    j = ShardJournal(tmp_path, "a" * 64)
    for i in range(3):
        j.append(_entry(i))
    j.close()
    assert [e["index"] for e in read_journal(tmp_path, "a" * 64)] == [0, 1, 2]
    assert read_journal(tmp_path, "b" * 64) == []  # bound to the store's settings
    lines = (tmp_path / JOURNAL).read_bytes().splitlines()
    flipped = lines[1].replace(b'"bytes":100', b'"bytes":101')  # an edited entry fails its checksum
    typed = json.loads(lines[0])
    typed["entry"]["index"] = True  # not an int (strict), even with a matching checksum below
    (tmp_path / JOURNAL).write_bytes(b"\n".join([json.dumps(typed).encode(), flipped, lines[2], lines[2][:40]]))
    assert [e["index"] for e in read_journal(tmp_path, "a" * 64)] == [2]
    assert "3 line(s) that do not check out" in caplog.text


def test_a_run_folds_the_journal_a_logarithmic_number_of_times(digits60, tmp_path, monkeypatch, snapshot):
    written: list[int] = []
    real = session_mod.write_manifest
    monkeypatch.setattr(session_mod, "write_manifest",
                        lambda root, m: (written.append(len(m["shards"])), real(root, m))[1])
    store = drkit.reinforce(digits60, tiny_teacher(1, 10), tmp_path / "s", **RUN)
    # start (0 shards), folds when the journal is as long as the list (16, 32 would be 32 > 30), the end
    assert written == [0, 16, 30]
    assert not (tmp_path / "s" / JOURNAL).exists()
    assert store.manifest["complete"] and len(store.shards) == 30


def test_an_interrupted_run_resumes_every_shard_in_its_journal(digits60, tmp_path, snapshot):
    reference = drkit.reinforce(digits60, Interrupting(tiny_teacher(1, 10)), tmp_path / "ref", **RUN)
    out = tmp_path / "s"
    with pytest.raises(KeyboardInterrupt):  # 22 shards written: 16 in the manifest, 6 in the journal only
        drkit.reinforce(digits60, Interrupting(tiny_teacher(1, 10), at=24), out, **RUN)
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["shards"]) == 16 and len(read_journal(out, manifest["settings_sha256"])) == 6
    with pytest.raises(StoreError, match="incomplete"):
        drkit.Store.open(out)
    store = drkit.reinforce(digits60, Interrupting(tiny_teacher(1, 10)), out, **RUN)
    assert store.run_stats["records_computed"] == 8 * 2 * 2  # only the 8 shards neither listed
    assert snapshot(out) == snapshot(reference.root)


def test_a_journal_line_cut_short_costs_one_shard(digits60, tmp_path, snapshot):
    reference = drkit.reinforce(digits60, Interrupting(tiny_teacher(1, 10)), tmp_path / "ref", **RUN)
    out = tmp_path / "s"
    with pytest.raises(KeyboardInterrupt):
        drkit.reinforce(digits60, Interrupting(tiny_teacher(1, 10), at=24), out, **RUN)
    journal = out / JOURNAL
    journal.write_bytes(journal.read_bytes()[:-30])  # killed mid-append: the last line is half there
    (out / "shard-00020.npy").write_bytes(b"damaged")  # and a listed shard no longer of its size
    store = drkit.reinforce(digits60, Interrupting(tiny_teacher(1, 10)), out, **RUN)
    assert store.run_stats["records_computed"] == 10 * 2 * 2  # 8 never written + the cut line's + the damaged one
    assert snapshot(out) == snapshot(reference.root)
    assert np.array_equal(store.records(42), reference.records(42))

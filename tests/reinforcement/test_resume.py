"""A reinforcement run killed with SIGKILL at several points and rerun gives the same store,
byte for byte, as an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import cli_reinforce_args, kill_cli_when

import drkit
from drkit.cli.main import main
from drkit.errors import StoreError

TESTS = Path(__file__).parents[1]


def _files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir())}


@pytest.fixture(scope="module")
def npz_data(tmp_path_factory: pytest.TempPathFactory) -> str:
    ds = drkit.load_dataset("digits").subset(np.arange(160))
    path = tmp_path_factory.mktemp("data") / "digits160.npz"
    np.savez(path, x=ds.images[:, 0], y=ds.labels)
    return f"npz:{path}"


@pytest.mark.slow
def test_sigkill_at_several_points_then_resume_is_byte_identical(npz_data, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    assert main(cli_reinforce_args(npz_data, reference)) == 0

    seen = []
    for shards in (0, 2, 6):  # before any shard, then twice more after resuming
        seen.append(kill_cli_when(cli_reinforce_args(npz_data, resumed), resumed, shards))
        with pytest.raises(StoreError, match="incomplete"):
            drkit.Store.open(resumed)
    print("shards on disk when killed:", seen)
    assert seen[-1] < 10, "the run finished before it could be killed; the test proves nothing"
    assert main(cli_reinforce_args(npz_data, resumed)) == 0
    assert not list(resumed.glob("*.tmp"))
    assert _files(resumed) == _files(reference)

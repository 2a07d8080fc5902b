"""A reinforcement run killed with SIGKILL at several points and rerun gives the same store,
byte for byte, as an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import drkit
from drkit.cli import main
from drkit.errors import StoreError

TESTS = Path(__file__).parent


def _files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir())}


@pytest.fixture(scope="module")
def npz_data(tmp_path_factory: pytest.TempPathFactory) -> str:
    ds = drkit.load_dataset("digits").subset(np.arange(160))
    path = tmp_path_factory.mktemp("data") / "digits160.npz"
    np.savez(path, x=ds.images[:, 0], y=ds.labels)
    return f"npz:{path}"


def _args(data: str, out: Path) -> list[str]:
    return ["reinforce", data, "--teacher", "python:_cli_teachers:slow", "--policy", "randaugment+mixing",
            "--num-augs", "4", "--topk", "3", "--shard-size", "16", "--teacher-batch", "24",
            "--batch-size", "16", "--num-workers", "0", "--device", "cpu", "--out", str(out), "-q"]


def _kill_when(args: list[str], out: Path, shards_done: int, timeout: float = 60.0) -> int:
    """Start the CLI, SIGKILL it once ``out`` holds a manifest and >= ``shards_done`` shards."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "drkit.cli", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "manifest.json").exists() and len(list(out.glob("shard-*.npy"))) >= shards_done:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode() if proc.stderr else ""
    return len(list(out.glob("shard-*.npy")))


@pytest.mark.slow
def test_sigkill_at_several_points_then_resume_is_byte_identical(npz_data, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    assert main(_args(npz_data, reference)) == 0

    seen = []
    for shards in (0, 2, 6):  # before any shard, then twice more after resuming
        seen.append(_kill_when(_args(npz_data, resumed), resumed, shards))
        with pytest.raises(StoreError, match="incomplete"):
            drkit.Store.open(resumed)
    print("shards on disk when killed:", seen)
    assert seen[-1] < 10, "the run finished before it could be killed; the test proves nothing"
    assert main(_args(npz_data, resumed)) == 0
    assert not list(resumed.glob("*.tmp"))
    assert _files(resumed) == _files(reference)

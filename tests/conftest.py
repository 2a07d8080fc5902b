"""Shared fixtures: tiny real data (a digits slice), a tiny RGB dataset, tiny deterministic teachers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from drkit.data import ArrayDataset, load_dataset
from drkit.models import SmallCNN

TESTS = Path(__file__).parent
if str(TESTS) not in sys.path:  # helper modules (``_teacher_zoo``) for ``python:MODULE:CALLABLE`` specs
    sys.path.insert(0, str(TESTS))


@pytest.fixture(scope="session", autouse=True)
def _drkit_cache(tmp_path_factory):
    """drkit's caches (image-folder scans, wds indexes) in the session's temporary folder, never in
    the user's ~/.cache; subprocesses inherit it."""
    old = {k: os.environ.get(k) for k in ("DRKIT_CACHE",)}
    os.environ["DRKIT_CACHE"] = str(tmp_path_factory.mktemp("drkit-cache"))
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def _digits_train() -> ArrayDataset:
    return load_dataset("digits")  # type: ignore[return-value]


@pytest.fixture()
def digits60(_digits_train: ArrayDataset) -> ArrayDataset:
    """60 real 8×8 grayscale digits (1, 8, 8), 10 classes."""
    return _digits_train.subset(np.arange(60), name="digits60")


@pytest.fixture()
def rgb12() -> ArrayDataset:
    """12 random RGB images (3, 40, 48) in 3 classes, from a fixed numpy seed."""
    rng = np.random.default_rng(1234)
    images = rng.integers(0, 256, size=(12, 3, 40, 48), dtype=np.uint8)
    labels = np.arange(12) % 3
    return ArrayDataset(images, labels, classes=["a", "b", "c"], name="rgb12")


def tiny_teacher(in_chans: int, num_classes: int) -> nn.Module:
    """SmallCNN of width 4 from a fixed torch seed: the same weights every time."""
    torch.manual_seed(0)
    return SmallCNN(in_chans, num_classes, width=4).eval()


@pytest.fixture()
def digits_teacher() -> nn.Module:
    return tiny_teacher(1, 10)


@pytest.fixture()
def rgb_teacher() -> nn.Module:
    return tiny_teacher(3, 3)


class RecordingTeacher(nn.Module):
    """Wraps a teacher and keeps a copy of every input batch it is given."""

    def __init__(self, teacher: nn.Module) -> None:
        super().__init__()
        self.teacher = teacher
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().cpu().clone())
        return self.teacher(x)


@pytest.fixture()
def one_thread():
    """One intra-op thread for the duration of a test: tiny convolutions on a busy 2-core machine
    are several times faster without OpenMP's hand-offs. Restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --------------------------------------------------------------------------- stores

SMALL_RUN = {"policy": "randaugment+mixing", "num_augs": 3, "topk": 3, "shard_size": 16, "teacher_batch": 8,
             "batch_size": 16, "num_workers": 0}


@pytest.fixture()
def make_store(tmp_path: Path):
    """``make_store(dataset, teacher, out=tmp_path/"s", **settings)``: a small ``drkit.reinforce`` run
    (3 augmentations, top-3, shards of 16 samples, teacher chunks of 8, no workers by default)."""
    import drkit

    def make(dataset, teacher, out: Path | None = None, **settings):
        return drkit.reinforce(dataset, teacher, out or tmp_path / "s", progress=False, **{**SMALL_RUN, **settings})

    return make


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative name -> content)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(name="snapshot")
def _snapshot_fixture():
    return snapshot


def cli_reinforce_args(data: str, out: Path, *extra: str) -> list[str]:
    """``drkit reinforce`` with the slow test teacher: 160 digits give 10 shards, each taking a while."""
    return ["reinforce", data, "--teacher", "python:_cli_teachers:slow", "--policy", "randaugment+mixing",
            "--num-augs", "4", "--topk", "3", "--shard-size", "16", "--teacher-batch", "24",
            "--batch-size", "16", "--num-workers", "0", "--device", "cpu", "--out", str(out), "-q", *extra]


def kill_cli_when(args: list[str], out: Path, shards_done: int, timeout: float = 60.0) -> int:
    """Run ``drkit`` in a child process; SIGKILL it once ``out`` holds a manifest and ``shards_done`` shards.

    Returns the number of shards on disk after the kill.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
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

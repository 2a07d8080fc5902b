"""The teacher of the two-node Ray test (``tests/reinforcement/test_ray_cluster.py``), named by the
spec ``python:_cluster_teachers:watched``. A spec carries no arguments, so its settings come from
the environment every Ray node inherits from the test: ``DRKIT_TEST_PIDDIR`` (each forward touches
``<dir>/<pid>``, so the test sees which processes compute), ``DRKIT_TEST_SECONDS`` (the sleep before
each forward, so the run lasts long enough to lose a node part way) and ``DRKIT_TEST_WORKERS``
(in a Ray worker, the first forward waits until that many Ray workers have touched the directory:
one worker cannot finish the run before the other node's has started, however slowly it starts)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import torch
from _ray_teachers import tiny
from torch import nn


def _ray_workers(piddir: Path) -> int:
    """Processes in ``piddir`` that are Ray workers (a Ray worker's parent is its node's raylet)."""
    n = 0
    for p in piddir.iterdir():
        try:
            n += psutil.Process(int(p.name)).parent().name() == "raylet"
        except (psutil.Error, AttributeError):  # gone, or no parent
            continue
    return n


class _Watched(nn.Module):
    def __init__(self, model: nn.Module, piddir: str, seconds: float, workers: int) -> None:
        super().__init__()
        self.model, self.piddir, self.seconds, self.workers = model, Path(piddir), seconds, workers
        self.waited = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (self.piddir / str(os.getpid())).touch()
        if not self.waited and psutil.Process().parent().name() == "raylet":
            deadline = time.monotonic() + 120  # the test's own deadline fails it first
            while _ray_workers(self.piddir) < self.workers and time.monotonic() < deadline:
                time.sleep(0.05)
            self.waited = True
        time.sleep(self.seconds)
        return self.model(x)


def watched(num_classes: int, in_chans: int) -> nn.Module:
    return _Watched(tiny(num_classes, in_chans), os.environ["DRKIT_TEST_PIDDIR"],
                    float(os.environ.get("DRKIT_TEST_SECONDS", "0")), int(os.environ.get("DRKIT_TEST_WORKERS", "0")))

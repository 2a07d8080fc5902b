"""Teachers for the Ray engine tests (shipped to Ray workers by value, or named by a
``python:_ray_teachers:NAME`` spec with ``tests/`` on the workers' PYTHONPATH)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from torch import nn

from drkit.models import SmallCNN


class Watched(nn.Module):
    """Wraps a teacher: before each forward, touches ``piddir/<pid>`` (so a test can find the
    processes that run it), sleeps ``seconds``, and raises ``KeyboardInterrupt`` on forward number
    ``interrupt_at`` (an interrupted run). None of this is a parameter, so it does not change the
    teacher's description in the store's manifest."""

    def __init__(self, model: nn.Module, piddir: str | os.PathLike[str], seconds: float = 0.0,
                 interrupt_at: int | None = None) -> None:
        super().__init__()
        self.model, self.piddir, self.seconds, self.interrupt_at = model, str(piddir), seconds, interrupt_at
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.interrupt_at is not None and self.calls >= self.interrupt_at:
            raise KeyboardInterrupt
        Path(self.piddir, str(os.getpid())).touch()
        time.sleep(self.seconds)
        return self.model(x)


def tiny(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    torch.manual_seed(0)
    return SmallCNN(in_chans, num_classes, width=4)


def unseeded(num_classes: int, in_chans: int) -> nn.Module:
    """Other random weights in every process: what a checkpoint-less ``timm:`` teacher does."""
    return SmallCNN(in_chans, num_classes, width=4)

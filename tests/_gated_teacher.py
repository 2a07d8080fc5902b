"""A CLI teacher (``python:_gated_teacher:gated``) that holds its run mid-store until a file exists:
after the probe, each forward waits for ``$DRKIT_TEST_GATE`` (at most 120 s)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from torch import nn

from drkit.models import SmallCNN


class _Gated(nn.Module):
    def __init__(self, model: nn.Module, gate: Path) -> None:
        super().__init__()
        self.model, self.gate, self.calls = model, gate, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        deadline = time.monotonic() + 120
        while self.calls > 1 and not self.gate.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.model(x)


def gated(num_classes: int, in_chans: int) -> nn.Module:
    torch.manual_seed(0)
    return _Gated(SmallCNN(in_chans, num_classes, width=4), Path(os.environ["DRKIT_TEST_GATE"]))

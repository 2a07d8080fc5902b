"""Teachers for tests that go through the CLI (``--teacher python:_cli_teachers:NAME``)."""

from __future__ import annotations

import time

import torch
from torch import nn

from drkit.models import SmallCNN


class _Slow(nn.Module):
    """Sleeps before each forward, so a test can kill the process between shards."""

    def __init__(self, model: nn.Module, seconds: float) -> None:
        super().__init__()
        self.model, self.seconds = model, seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        return self.model(x)


def tiny(num_classes: int, in_chans: int) -> nn.Module:
    torch.manual_seed(0)
    return SmallCNN(in_chans, num_classes, width=4)


def slow(num_classes: int, in_chans: int) -> nn.Module:
    return _Slow(tiny(num_classes, in_chans), 0.05)


def wrong_width(num_classes: int, in_chans: int) -> nn.Module:
    torch.manual_seed(0)
    return SmallCNN(in_chans, num_classes + 1, width=4)

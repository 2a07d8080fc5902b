"""Teachers for ``python:_teacher_zoo:NAME`` specs in the tests (tests/ is on sys.path)."""

from __future__ import annotations

import torch
from torch import nn

from drkit.models import SmallCNN


def tiny_cnn(num_classes: int, in_chans: int) -> nn.Module:
    torch.manual_seed(0)
    return SmallCNN(in_chans, num_classes, width=4)


def not_a_module(num_classes: int, in_chans: int) -> object:
    return {"num_classes": num_classes}

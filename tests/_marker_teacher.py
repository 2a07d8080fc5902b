"""A ``python:`` teacher that leaves a mark when it is built: proof of whether a store made drkit run it."""

import os
from pathlib import Path

from drkit.models import SmallCNN


def build(num_classes: int, in_chans: int):
    Path(os.environ["DRKIT_TEST_MARKER"]).write_text("this code ran")
    return SmallCNN(in_chans, num_classes, width=4)

"""The teacher of the two-node Ray test (``tests/reinforcement/test_ray_cluster.py``), named by the
spec ``python:_cluster_teachers:watched``. A spec carries no arguments, so what :class:`Watched`
needs comes from the environment every Ray node inherits from the test: ``DRKIT_TEST_PIDDIR`` (each
forward touches ``<dir>/<pid>``, so the test sees which processes compute) and
``DRKIT_TEST_SECONDS`` (the sleep before each forward, so the run lasts long enough to lose a node
part way)."""

from __future__ import annotations

import os

from _ray_teachers import Watched, tiny
from torch import nn


def watched(num_classes: int, in_chans: int) -> nn.Module:
    return Watched(tiny(num_classes, in_chans), os.environ["DRKIT_TEST_PIDDIR"],
                   seconds=float(os.environ.get("DRKIT_TEST_SECONDS", "0")))

"""Subsets of a dataset chosen by class."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

__all__ = ["stratified_subset"]


def stratified_subset(labels: np.ndarray, fraction: float, *, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``fraction`` of each class (at least one per class), chosen by ``seed``."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"train fraction must be in (0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        picked.append(rng.choice(idx, size=max(1, int(round(fraction * len(idx)))), replace=False))
    return np.sort(np.concatenate(picked))

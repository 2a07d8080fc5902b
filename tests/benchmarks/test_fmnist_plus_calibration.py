"""The ECE floor of benchmarks/fmnist_plus/calibration.py: what a calibrated model's ECE is on N images."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.fmnist_plus import calibration


def _probs(n: int, confidence: float, classes: int = 10) -> np.ndarray:
    p = np.full((n, classes), (1 - confidence) / (classes - 1))
    p[np.arange(n), np.arange(n) % classes] = confidence
    return p


def test_floor_is_zero_for_certain_predictions_and_shrinks_with_more_images():
    assert calibration.ece_floor(_probs(500, 1.0)) == 0.0
    small, large = (calibration.ece_floor(_probs(n, 0.8)) for n in (200, 20000))
    assert small > 2 * large  # sampling noise: about 1/sqrt(n)
    assert large < 0.01


def test_ratios_per_architecture_and_of_means():
    rows = [{"arch": a, "mode": m, "seed": 0, "all": {"ece": e}}
            for a, m, e in (("a", "erm", 0.2), ("a", "dr", 0.05), ("b", "erm", 0.02), ("b", "dr", 0.02))]
    r = calibration.ratios(rows, "all")
    assert r["a"] == pytest.approx(0.25) and r["b"] == pytest.approx(1.0)
    assert r["mean of ratios"] == pytest.approx(0.625) and r["ratio of means"] == pytest.approx(0.07 / 0.22)

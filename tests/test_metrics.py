"""Metrics against hand-computed values (saturated confidences and bin edges included), and
cross-checks against torchmetrics, scikit-learn and Guo et al.'s reference ECE loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from drkit.metrics import (
    accuracy,
    adaptive_ece,
    agreement,
    brier,
    classification_metrics,
    ece,
    entropy,
    evaluation_metrics,
    nll,
    per_class_accuracy,
    reliability,
    top_k_accuracy,
)

# Four predictions over three classes, worked by hand in the tests below.
P = np.array([
    [0.95, 0.05, 0.00],  # conf 0.95 -> class 0, label 0: right
    [1.00, 0.00, 0.00],  # conf 1.0 (saturated) -> 0, label 1: wrong, p(label) = 0
    [0.00, 1.00, 0.00],  # conf 1.0 -> 1, label 1: right
    [0.60, 0.40, 0.00],  # conf 0.6 = 9/15, exactly a bin edge -> 0, label 0: right
])  # fmt: skip
Y = np.array([0, 1, 1, 0])


def _guo_ece(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Guo et al. (2017)'s reference loop: bins (lo, hi] over linspace edges."""
    conf, pred = probs.max(1), probs.argmax(1)
    acc = pred == labels
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            total += m.mean() * abs(acc[m].mean() - conf[m].mean())
    return total


def test_accuracy_nll_brier_by_hand():
    assert accuracy(P, Y) == 0.75
    # -log(0.95), -log(1e-12) (the clip), -log(1), -log(0.6)
    assert nll(P, Y) == pytest.approx((-math.log(0.95) + 12 * math.log(10) - math.log(0.6)) / 4, rel=1e-12)
    # (0.05²+0.05²) + (1+1) + 0 + (0.4²+0.4²)
    assert brier(P, Y) == pytest.approx((0.005 + 2 + 0 + 0.32) / 4, rel=1e-12)


def test_top_k_by_hand_with_ties():
    p = np.array([[0.4, 0.4, 0.2], [0.1, 0.3, 0.6], [0.2, 0.3, 0.5]])
    y = np.array([1, 0, 1])
    # row 0: tie with class 0, the lower id ranks first -> label at rank 1; row 1: rank 2; row 2: rank 1
    assert top_k_accuracy(p, y, 1) == accuracy(p, y) == 0.0
    assert top_k_accuracy(p, y, 2) == pytest.approx(2 / 3)
    assert top_k_accuracy(p, y, 3) == top_k_accuracy(p, y, 5) == 1.0
    with pytest.raises(ValueError, match="k must be"):
        top_k_accuracy(p, y, 0)


def test_ece_by_hand_saturated_and_on_a_bin_edge():
    # last bin (14/15, 1]: {0.95 right, 1.0 wrong, 1.0 right} -> |2/3 - 2.95/3| * 3/4 = 0.2375
    # bin (8/15, 9/15]: {0.6 right} -> |1 - 0.6| * 1/4 = 0.1
    assert ece(P, Y) == pytest.approx(0.3375, abs=1e-12)
    assert ece(P, Y) == pytest.approx(_guo_ece(P, Y), abs=1e-12)


def test_ece_differs_from_torchmetrics_only_where_it_should():
    tm = pytest.importorskip("torchmetrics.functional.classification")
    # torchmetrics puts confidence 1.0 into a 16th bin: {0.95}: 0.05/4, {1.0, 1.0}: 0.5 * 2/4, {0.6}: 0.4/4
    theirs = float(tm.multiclass_calibration_error(torch.tensor(P), torch.tensor(Y), num_classes=3, n_bins=15))
    assert theirs == pytest.approx(0.3625, abs=1e-6)
    assert ece(P, Y) == pytest.approx(0.3375, abs=1e-12)


def test_ece_matches_torchmetrics_and_reference_without_saturation():
    tm = pytest.importorskip("torchmetrics.functional.classification")
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2000, 10)) * 3
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = rng.integers(0, 10, size=2000)
    y[:1200] = p[:1200].argmax(1)  # a mix of right and wrong
    theirs = float(tm.multiclass_calibration_error(torch.tensor(p), torch.tensor(y), num_classes=10, n_bins=15))
    assert ece(p, y) == pytest.approx(theirs, abs=1e-6)
    assert ece(p, y) == pytest.approx(_guo_ece(p, y), abs=1e-12)


def test_adaptive_ece_by_hand():
    # sorted confidences 0.6(R) 0.95(R) 1.0(W) 1.0(R); 2 equal-mass bins:
    # {0.6, 0.95}: |1 - 0.775| * 2/4;  {1.0 W, 1.0 R}: |0.5 - 1| * 2/4
    assert adaptive_ece(P, Y, bins=2) == pytest.approx(0.1125 + 0.25, abs=1e-12)
    # one bin: |acc - mean conf| = |0.75 - 0.8875|
    assert adaptive_ece(P, Y, bins=1) == pytest.approx(0.1375, abs=1e-12)
    # more bins than predictions: one prediction per bin, mean of |correct - conf|
    assert adaptive_ece(P, Y) == pytest.approx((0.05 + 1.0 + 0.0 + 0.4) / 4, abs=1e-12)
    assert adaptive_ece(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 0.0


def test_reliability_bins_by_hand():
    r = reliability(P, Y)
    assert len(r["edges"]) == 16 and r["edges"][-1] == 1.0
    assert r["count"][14] == 3 and r["count"][8] == 1 and sum(r["count"]) == 4
    assert r["accuracy"][14] == pytest.approx(2 / 3) and r["confidence"][14] == pytest.approx(2.95 / 3)
    assert r["accuracy"][8] == 1.0 and r["confidence"][8] == pytest.approx(0.6)
    assert math.isnan(r["accuracy"][0])  # empty bin


def test_per_class_accuracy_agreement_entropy_by_hand():
    pc = per_class_accuracy(np.pad(P, ((0, 0), (0, 1))), Y)  # a 4th class with no sample
    assert pc[0] == 1.0 and pc[1] == 0.5 and math.isnan(pc[2]) and math.isnan(pc[3])
    assert agreement(P, P) == 1.0
    assert agreement(P, P[:, ::-1]) == 0.25  # argmax 0,0,1,0 vs 2,2,1,2: only the third row agrees
    h = entropy(np.array([[0.25, 0.25, 0.25, 0.25], [1.0, 0, 0, 0], [0.5, 0.5, 0, 0]]))
    assert h == pytest.approx([math.log(4), 0.0, math.log(2)])
    with pytest.raises(ValueError, match="same shape|one shape"):
        agreement(P, P[:2])


def test_sklearn_cross_check():
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(7), size=500)
    y = rng.integers(0, 7, size=500)
    assert top_k_accuracy(p, y, 5) == pytest.approx(skm.top_k_accuracy_score(y, p, k=5, labels=np.arange(7)))
    assert nll(p, y) == pytest.approx(skm.log_loss(y, p, labels=np.arange(7)), rel=1e-9)


def test_summaries_and_bad_input():
    m = evaluation_metrics(P, Y)
    assert set(m) == {"top1", "top5", "nll", "brier", "ece", "adaptive_ece"}
    assert set(classification_metrics(P, Y)) == {"top1", "nll", "brier", "ece"}  # unchanged: training logs it
    with pytest.raises(ValueError, match="probs must be"):
        accuracy(P[0], Y)
    with pytest.raises(ValueError, match="class ids"):
        ece(P, np.array([0, 1, 2, 3]))

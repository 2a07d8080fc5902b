"""Classification metrics on predicted probabilities, in float64.

Top-1, NLL, Brier score and expected calibration error (ECE: 15 equal-width bins on the top-label
confidence; a confidence of exactly 1.0 falls in the last bin, not an extra one).
"""

from __future__ import annotations

import numpy as np

__all__ = ["accuracy", "nll", "brier", "ece", "classification_metrics"]

_EPS = 1e-12


def _check(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if p.ndim != 2 or y.shape != (p.shape[0],):
        raise ValueError(f"probs must be (N, C) and labels (N,), got {p.shape} and {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"labels must be class ids in 0..{p.shape[1] - 1}")
    return p, y


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    p, y = _check(probs, labels)
    return float((p.argmax(1) == y).mean())


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class (probabilities clipped at 1e-12)."""
    p, y = _check(probs, labels)
    return float(-np.log(np.clip(p[np.arange(len(y)), y], _EPS, 1.0)).mean())


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean over samples of ``sum_c (p_c - onehot_c)^2``."""
    p, y = _check(probs, labels)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(y)), y] = 1.0
    return float(((p - onehot) ** 2).sum(1).mean())


def ece(probs: np.ndarray, labels: np.ndarray, *, bins: int = 15) -> float:
    """Expected calibration error: ``sum_b |B_b|/N * |acc(B_b) - conf(B_b)|`` over ``bins``
    equal-width bins ``(lo, hi]`` of the top-label confidence (the first bin also holds 0)."""
    p, y = _check(probs, labels)
    conf = p.max(1)
    correct = (p.argmax(1) == y).astype(np.float64)
    # bin b holds (b/bins, (b+1)/bins]; ceil puts exactly 1.0 into the last bin
    idx = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(total)


def classification_metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {"top1": accuracy(probs, labels), "nll": nll(probs, labels), "brier": brier(probs, labels),
            "ece": ece(probs, labels)}

"""Temperature scaling (Guo et al., 2017): the softmax temperature with the least NLL on a held-out
split, for a teacher ensemble (``drkit teach``) or any classifier (``drkit eval --calibration-data``).

A model's probabilities stand in for its logits: ``log p = z - logsumexp(z)`` differs from ``z`` by a
constant per row, so ``softmax(log p / T) = softmax(z / T)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize_scalar

from ..metrics import accuracy, ece, nll

__all__ = ["ensemble_probs", "fit_temperature", "scale_probs", "temperature_scaling"]


def ensemble_probs(logits: Sequence[np.ndarray], temperature: float) -> np.ndarray:
    """Mean of the members' ``softmax(logits / T)``, as :class:`TeacherEnsemble` computes it."""
    total = 0.0
    for z in logits:
        z = z / temperature
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        total = total + p / p.sum(axis=1, keepdims=True)
    return total / len(logits)


def fit_temperature(logits: Sequence[np.ndarray], labels: np.ndarray, *, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The softmax temperature of an ensemble (mean of softmax(z/T)) with the least NLL on
    ``labels`` — a 1-D bounded search over log T."""

    labels = np.asarray(labels)

    def nll(log_t: float) -> float:
        p = ensemble_probs(logits, math.exp(log_t))[np.arange(len(labels)), labels]
        return float(-np.log(np.clip(p, 1e-12, None)).mean())

    res = minimize_scalar(nll, bounds=(math.log(bounds[0]), math.log(bounds[1])), method="bounded",
                          options={"xatol": 1e-4})
    return float(math.exp(res.x))


def scale_probs(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log probs / T)``: a classifier's probabilities at another temperature."""
    return ensemble_probs([np.log(np.clip(probs, 1e-12, None))], temperature)


def temperature_scaling(probs: np.ndarray, labels: np.ndarray, held_probs: np.ndarray,
                        held_labels: np.ndarray) -> dict[str, float]:
    """Fit the temperature on the held-out ``held_probs`` and report the evaluation split's ECE and
    NLL before and after it (top-1 does not change: the argmax is the same)."""
    t = fit_temperature([np.log(np.clip(held_probs, 1e-12, None))], held_labels)
    scaled = scale_probs(probs, t)
    return {"temperature": t, "top1": accuracy(probs, labels),
            "ece_before": ece(probs, labels), "ece_after": ece(scaled, labels),
            "nll_before": nll(probs, labels), "nll_after": nll(scaled, labels)}

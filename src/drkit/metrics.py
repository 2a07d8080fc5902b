"""Classification metrics on predicted probabilities, in float64.

Every function takes ``probs`` ``(N, C)`` (rows are distributions) and integer ``labels`` ``(N,)``.

- top-1 / top-k accuracy (ties broken towards the lower class id, as ``argmax`` does);
- NLL of the true class (probabilities clipped at 1e-12, so a saturated wrong answer costs 27.6);
- Brier score ``mean_n sum_c (p_c - onehot_c)^2`` (0 .. 2);
- ECE (Guo et al., 2017): 15 equal-width bins ``(lo, hi]`` on the top-label confidence; a
  confidence of exactly 1.0 falls in the last bin, not an extra one (torchmetrics' ``bucketize``
  puts it in a 16th bin of its own), and 0 in the first;
- adaptive ECE: the same sum over 15 equal-*mass* bins (each holds N/15 predictions, sorted by
  confidence), which does not leave most bins empty when a model is confident;
- per-class accuracy (recall of each class), top-1 agreement between two predictors and entropy.

See ``docs/evaluation.md`` for what each number means.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "accuracy",
    "top_k_accuracy",
    "nll",
    "brier",
    "ece",
    "adaptive_ece",
    "reliability",
    "per_class_accuracy",
    "agreement",
    "entropy",
    "classification_metrics",
    "evaluation_metrics",
]

_EPS = 1e-12
ECE_BINS = 15


def _check(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if p.ndim != 2 or y.shape != (p.shape[0],):
        raise ValueError(f"probs must be (N, C) and labels (N,), got {p.shape} and {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"labels must be class ids in 0..{p.shape[1] - 1}")
    return p, y


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of samples whose ``argmax`` is the label."""
    p, y = _check(probs, labels)
    return float((p.argmax(1) == y).mean())


def top_k_accuracy(probs: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Fraction of samples whose label is among the ``k`` most probable classes.

    A class ranks before the label when its probability is larger, or equal with a lower class id
    (the order ``argmax`` uses), so ``k=1`` equals :func:`accuracy`; ``k >= C`` gives 1.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    p, y = _check(probs, labels)
    py = p[np.arange(len(y)), y][:, None]
    ids = np.arange(p.shape[1])[None, :]
    rank = ((p > py) | ((p == py) & (ids < y[:, None]))).sum(1)
    return float((rank < k).mean())


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


def _confidence_correct(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return p.max(1), (p.argmax(1) == y).astype(np.float64)


def _bin_index(conf: np.ndarray, bins: int) -> np.ndarray:
    # bin b holds (b/bins, (b+1)/bins]; ceil puts exactly 1.0 into the last bin, 0 into the first
    return np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)


def ece(probs: np.ndarray, labels: np.ndarray, *, bins: int = ECE_BINS) -> float:
    """Expected calibration error: ``sum_b |B_b|/N * |acc(B_b) - conf(B_b)|`` over ``bins``
    equal-width bins ``(lo, hi]`` of the top-label confidence (the first bin also holds 0)."""
    p, y = _check(probs, labels)
    conf, correct = _confidence_correct(p, y)
    idx = _bin_index(conf, bins)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(total)


def adaptive_ece(probs: np.ndarray, labels: np.ndarray, *, bins: int = ECE_BINS) -> float:
    """ECE over ``bins`` equal-mass bins: predictions sorted by top-label confidence (stable sort)
    and cut into ``bins`` consecutive groups whose sizes differ by at most one (the first groups
    take the remainder); with fewer than ``bins`` predictions every group holds one."""
    p, y = _check(probs, labels)
    if len(y) == 0:
        return 0.0
    conf, correct = _confidence_correct(p, y)
    order = np.argsort(conf, kind="stable")
    total = 0.0
    for group in np.array_split(order, min(bins, len(order))):
        total += len(group) / len(y) * abs(correct[group].mean() - conf[group].mean())
    return float(total)


def reliability(probs: np.ndarray, labels: np.ndarray, *, bins: int = ECE_BINS) -> dict[str, list[float]]:
    """What a reliability diagram draws: per equal-width bin (as in :func:`ece`) the bin edges,
    the count, the mean confidence and the accuracy (``nan`` for an empty bin)."""
    p, y = _check(probs, labels)
    conf, correct = _confidence_correct(p, y)
    idx = _bin_index(conf, bins)
    count = np.bincount(idx, minlength=bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=bins) / count
        acc = np.bincount(idx, weights=correct, minlength=bins) / count
    return {"edges": np.linspace(0.0, 1.0, bins + 1).tolist(), "count": count.astype(int).tolist(),
            "confidence": mean_conf.tolist(), "accuracy": acc.tolist()}


def per_class_accuracy(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Accuracy on the samples of each class (its recall), ``(C,)``; ``nan`` for a class with no
    sample."""
    p, y = _check(probs, labels)
    c = p.shape[1]
    count = np.bincount(y, minlength=c).astype(np.float64)
    hits = np.bincount(y, weights=(p.argmax(1) == y).astype(np.float64), minlength=c)
    with np.errstate(invalid="ignore", divide="ignore"):
        return hits / count


def agreement(probs_a: np.ndarray, probs_b: np.ndarray) -> float:
    """Fraction of samples on which two predictors' ``argmax`` agree."""
    a, b = np.asarray(probs_a), np.asarray(probs_b)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"both predictions must be (N, C) of one shape, got {a.shape} and {b.shape}")
    return float((a.argmax(1) == b.argmax(1)).mean())


def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy of each row in nats, ``(N,)``; ``0 log 0 = 0``."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probs must be (N, C), got {p.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -terms.sum(1)


def classification_metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Top-1, NLL, Brier and ECE (what training records after every epoch)."""
    return {"top1": accuracy(probs, labels), "nll": nll(probs, labels), "brier": brier(probs, labels),
            "ece": ece(probs, labels)}


def evaluation_metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """:func:`classification_metrics` plus top-5 and adaptive ECE (what ``drkit eval`` reports)."""
    return {**classification_metrics(probs, labels), "top5": top_k_accuracy(probs, labels, 5),
            "adaptive_ece": adaptive_ece(probs, labels)}

"""Out-of-distribution detection from a classifier's own probabilities.

A model that knows what it does not know is less confident on inputs from another dataset (digits
shown to a Fashion-MNIST model). Two scores rank inputs by "OOD-ness" — the negated maximum
probability (Hendrycks & Gimpel, ICLR 2017) and the predictive entropy — and the AUROC of each
says how well it separates in-distribution from OOD inputs: the probability that a random OOD
input scores higher than a random in-distribution one, ties counting one half (0.5: no better
than chance, 1: perfect). It is the Mann–Whitney U statistic, computed from average ranks.

Inputs of another size or channel count are adapted to the model (bilinear resize with
antialiasing; gray -> RGB by repetition, RGB -> gray by luminance): a different look is the point
of OOD data, a different tensor shape is not.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torchvision.transforms.v2.functional as F

from ..metrics import entropy

__all__ = ["auroc", "ood_metrics", "adapt_images"]

log = logging.getLogger(__name__)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks (``scipy.stats.rankdata``)."""
    order = np.argsort(values, kind="stable")
    sorted_vals = values[order]
    # start of each run of equal values, and the average rank of the run
    starts = np.flatnonzero(np.r_[True, sorted_vals[1:] != sorted_vals[:-1]])
    ends = np.r_[starts[1:], len(values)]
    run_rank = (starts + 1 + ends) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


def auroc(scores_in: np.ndarray, scores_out: np.ndarray) -> float:
    """Area under the ROC curve for telling OOD inputs (positives, ``scores_out``) from
    in-distribution ones (``scores_in``) by thresholding a score that is higher for OOD.

    ``P(score_out > score_in) + 0.5 P(score_out == score_in)``, from the rank-sum statistic.
    """
    a = np.asarray(scores_in, dtype=np.float64).ravel()
    b = np.asarray(scores_out, dtype=np.float64).ravel()
    if len(a) == 0 or len(b) == 0:
        raise ValueError("auroc needs at least one in-distribution and one OOD score")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("auroc scores must be finite")
    ranks = _average_ranks(np.concatenate([a, b]))
    u = ranks[len(a):].sum() - len(b) * (len(b) + 1) / 2.0
    return float(u / (len(a) * len(b)))


def ood_metrics(probs_in: np.ndarray, probs_out: np.ndarray) -> dict[str, float]:
    """AUROC of the max-probability and entropy scores, and the mean entropy / max probability on
    each side (entropy in nats; ``log(C)`` is the uniform distribution's)."""
    p_in, p_out = np.asarray(probs_in, dtype=np.float64), np.asarray(probs_out, dtype=np.float64)
    if p_in.ndim != 2 or p_out.ndim != 2 or p_in.shape[1] != p_out.shape[1]:
        raise ValueError(f"probabilities must be (N, C) with the same C, got {p_in.shape} and {p_out.shape}")
    h_in, h_out = entropy(p_in), entropy(p_out)
    m_in, m_out = p_in.max(1), p_out.max(1)
    return {
        "auroc_max_prob": auroc(-m_in, -m_out),
        "auroc_entropy": auroc(h_in, h_out),
        "entropy_in": float(h_in.mean()),
        "entropy_out": float(h_out.mean()),
        "max_prob_in": float(m_in.mean()),
        "max_prob_out": float(m_out.mean()),
        "max_entropy": float(np.log(p_in.shape[1])),
    }


def adapt_images(images: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """``uint8`` images ``(B, C', H', W')`` made ``(B, *shape)``: channels converted, then resized
    (bilinear, antialiased). Unchanged when the shapes already agree."""
    c, h, w = shape
    x = images
    if x.shape[1] != c:
        if x.shape[1] == 1:
            x = x.expand(-1, c, -1, -1)
        elif x.shape[1] == 3 and c == 1:
            x = F.rgb_to_grayscale(x)
        else:
            x = x.float().mean(1, keepdim=True).round().to(torch.uint8).expand(-1, c, -1, -1)
    if tuple(x.shape[-2:]) != (h, w):
        x = F.resize(x, [h, w], interpolation=F.InterpolationMode.BILINEAR, antialias=True)
    return x.contiguous()

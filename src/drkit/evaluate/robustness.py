"""Accuracy under corruptions and shifts, and the corruption error relative to a reference model.

For each corruption or shift of :mod:`drkit.evaluate.corruptions` and each severity the model predicts
the corrupted images (generated batch by batch, never stored); top-1, NLL and ECE are recorded.

- **mean corruption accuracy** (mCA): top-1 averaged over corruptions and severities 1..5;
- **mean shift accuracy**: top-1 averaged over each shift's sweep (rotation 15°..180°,
  translation 2..26 px at 28 px);
- **mCE** (Hendrycks & Dietterich, ICLR 2019): per corruption ``CE_c = Σ_s E_{s,c} / Σ_s E^ref_{s,c}``
  with ``E`` the top-1 error and ``ref`` a reference model evaluated on the *same* corrupted
  images, then the mean over corruptions; **relative mCE** subtracts each model's clean error
  first. Below 1: more robust than the reference.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .._progress import progress_bar
from ..data import ImageDataset
from ..errors import ConfigError
from ..inference import image_batches, predict_batches
from ..metrics import accuracy, ece, nll
from .corruptions import CORRUPTIONS, SHIFTS, corrupt, describe, severity_levels

__all__ = ["evenly_spaced", "robustness_eval", "corruption_errors", "mce"]

log = logging.getLogger(__name__)

_CACHE_BYTES = 512 << 20  # keep the uint8 batches of a dataset in memory up to this size


def evenly_spaced(n: int, k: int | None) -> np.ndarray:
    """``min(k, n)`` evenly spaced indices of ``range(n)`` (all of them when ``k`` is None)."""
    if k is None or k >= n:
        return np.arange(n)
    if k < 1:
        raise ConfigError(f"sample count must be >= 1, got {k}")
    return np.unique(np.linspace(0, n - 1, num=k).round().astype(np.int64))


def _scores(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {"top1": accuracy(probs, labels), "nll": nll(probs, labels), "ece": ece(probs, labels)}


def robustness_eval(model: nn.Module, dataset: ImageDataset, *, corruptions: Sequence[str] = CORRUPTIONS,
                    shifts: Sequence[str] = tuple(SHIFTS), max_samples: int | None = None, seed: int = 0,
                    batch_size: int = 512, device: torch.device | None = None, backend: str = "torch",
                    progress: bool = False) -> dict[str, Any]:
    """Top-1, NLL and ECE of ``model`` under every severity of every corruption and shift.

    Args:
        model: classifier of float images in ``[0, 1]``.
        dataset: labelled images (checked against the model by the caller).
        corruptions: corruption names (``[]`` for none).
        shifts: shift names (``[]`` for none).
        max_samples: evaluate on this many evenly spaced images (all by default).
        seed: seed of the random corruptions; image ``i`` gets the same corruption in every model.
        batch_size: images per forward pass.
        device: where the model runs (default: where its parameters are).
        backend: corruption backend (see :func:`drkit.evaluate.corruptions.corrupt`).
        progress: show a progress bar over (corruption, severity) pairs.

    Returns:
        ``{"samples", "seed", "backend", "corruptions": {name: [{severity, param, top1, nll,
        ece}, ...]}, "shifts": {...}, "mean_corruption_accuracy", "mean_shift_accuracy":
        {name: acc}}``.
    """
    device = device or next(model.parameters()).device
    model.eval().to(device)
    idx = evenly_spaced(len(dataset), max_samples)
    labels = dataset.labels[idx]
    c, h, w = dataset.image_shape
    cached = len(idx) * c * h * w <= _CACHE_BYTES
    batches = list(image_batches(dataset, idx, batch_size)) if cached else None

    def run(name: str, severity: int) -> np.ndarray:
        source = batches if batches is not None else image_batches(dataset, idx, batch_size)
        # each image is keyed by its dataset index: the same corruption whatever the subset or batch
        return predict_batches(model, (corrupt(x, name, severity, seed=seed, indices=idx[a:a + len(x)].tolist(),
                                               backend=backend) for a, x in source), device)

    names = [*corruptions, *shifts]
    total = sum(severity_levels(n) for n in names)
    bar = progress_bar(total, desc="robustness", unit="set", enabled=progress)
    result: dict[str, Any] = {"samples": len(idx), "seed": seed, "backend": backend, "corruptions": {}, "shifts": {}}
    for name in names:
        rows = []
        for s in range(1, severity_levels(name) + 1):
            rows.append({"severity": s, "param": describe(name, s), **_scores(run(name, s), labels)})
            bar.update(1)
        result["shifts" if name in SHIFTS else "corruptions"][name] = rows
    bar.close()
    corr = [r["top1"] for rows in result["corruptions"].values() for r in rows]
    result["mean_corruption_accuracy"] = float(np.mean(corr)) if corr else None
    result["mean_shift_accuracy"] = {n: float(np.mean([r["top1"] for r in rows]))
                                     for n, rows in result["shifts"].items()}
    return result


def corruption_errors(robustness: dict[str, Any]) -> dict[str, list[float]]:
    """Top-1 error per severity of each corruption of a :func:`robustness_eval` result."""
    return {name: [1.0 - r["top1"] for r in rows] for name, rows in robustness["corruptions"].items()}


def mce(robustness: dict[str, Any], reference: dict[str, Any], *, clean_error: float | None = None,
        reference_clean_error: float | None = None) -> dict[str, Any]:
    """mCE (and, given both clean errors, relative mCE) of ``robustness`` against ``reference``,
    two :func:`robustness_eval` results over the same corruptions, seed and samples.

    A corruption on which the reference makes no error (or, for the relative form, no more
    error than on clean data) has no ratio; it is left out of the mean and listed as ``None``.
    """
    for key in ("seed", "samples", "backend"):
        if robustness.get(key) != reference.get(key):
            raise ConfigError(f"mCE needs the reference evaluated on the same corrupted images: {key} "
                              f"differs ({robustness.get(key)} vs {reference.get(key)}); evaluate both "
                              "with the same data, seed and sample count")
    err, ref = corruption_errors(robustness), corruption_errors(reference)
    missing = sorted(set(err) - set(ref))
    if missing:
        raise ConfigError(f"the reference was not evaluated on {', '.join(missing)}")
    ce: dict[str, float | None] = {}
    rel: dict[str, float | None] = {}
    for name, e in err.items():
        denom = float(np.sum(ref[name]))
        ce[name] = float(np.sum(e)) / denom if denom > 0 else None
        if clean_error is not None and reference_clean_error is not None:
            d = float(np.sum(np.asarray(ref[name]) - reference_clean_error))
            rel[name] = float(np.sum(np.asarray(e) - clean_error)) / d if d > 0 else None
    defined = [v for v in ce.values() if v is not None]
    out: dict[str, Any] = {"mce": float(np.mean(defined)) if defined else None, "ce": ce}
    if rel:
        rdef = [v for v in rel.values() if v is not None]
        out.update(relative_mce=float(np.mean(rdef)) if rdef else None, relative_ce=rel)
    return out

"""What a store is checked against: a dataset's fingerprint (length, classes, labels, sampled content)."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from .base import ImageDataset

__all__ = ["FINGERPRINT_ITEMS", "dataset_fingerprint"]

FINGERPRINT_ITEMS = 4096  # images hashed (evenly spaced) for a dataset's content checksum


def dataset_fingerprint(dataset: ImageDataset) -> dict[str, Any]:
    """Length, class count, label checksum and a content checksum over up to
    ``FINGERPRINT_ITEMS`` evenly spaced images: what a store is checked against."""
    n = len(dataset)
    labels = np.ascontiguousarray(np.asarray(dataset.labels, dtype="<i8"))
    idx = np.unique(np.linspace(0, n - 1, num=min(n, FINGERPRINT_ITEMS)).round().astype(np.int64)) if n else []
    h = hashlib.sha256()
    for i in idx:
        img = dataset.image(int(i))
        h.update(np.asarray(img.shape, dtype="<i8").tobytes())
        h.update(img.contiguous().numpy().tobytes())
    return {
        "length": n,
        "num_classes": dataset.num_classes,
        "image_shape": list(dataset.image_shape) if n else [],
        "labels_sha256": hashlib.sha256(labels.tobytes()).hexdigest(),
        "content_sha256": h.hexdigest(),
        "content_items": len(idx),
    }

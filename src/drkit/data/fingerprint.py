"""What a store is checked against: a dataset's fingerprint (length, classes, labels, sampled content)."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from .base import ImageDataset
from .folders import ImageFolderDataset

__all__ = ["FINGERPRINT_ITEMS", "dataset_fingerprint"]

FINGERPRINT_ITEMS = 4096  # images hashed (evenly spaced) for a dataset's content checksum


def dataset_fingerprint(dataset: ImageDataset) -> dict[str, Any]:
    """Length, class count, label checksum and a content checksum over up to
    ``FINGERPRINT_ITEMS`` evenly spaced images: what a store is checked against.

    For an image folder the content hash is remembered in its
    :class:`~drkit.data.folders.FolderCache` under the hashed files' paths, sizes, mtimes, ctimes
    and inodes: reopening an unchanged folder decodes nothing, and a changed file is hashed again."""
    n = len(dataset)
    labels = np.ascontiguousarray(np.asarray(dataset.labels, dtype="<i8"))
    idx = np.unique(np.linspace(0, n - 1, num=min(n, FINGERPRINT_ITEMS)).round().astype(np.int64)) if n else []
    # exactly a folder: a subclass may change what image() returns, which the file stats do not see
    folder = dataset if type(dataset) is ImageFolderDataset else None
    key = folder.content_key(idx) if folder is not None else None
    content = folder.cache.fingerprint(key) if folder is not None and key is not None else None
    if content is None:
        content = _content_sha256(dataset, idx)
        if folder is not None and key is not None:
            folder.cache.put_fingerprint(key, content)
            folder.cache.save()
    return {
        "length": n,
        "num_classes": dataset.num_classes,
        "image_shape": list(dataset.image_shape) if n else [],
        "labels_sha256": hashlib.sha256(labels.tobytes()).hexdigest(),
        "content_sha256": content,
        "content_items": len(idx),
    }


def _content_sha256(dataset: ImageDataset, idx: np.ndarray | list[int]) -> str:
    h = hashlib.sha256()
    for i in idx:
        img = dataset.image(int(i))
        h.update(np.asarray(img.shape, dtype="<i8").tobytes())
        h.update(img.contiguous().numpy().tobytes())
    return h.hexdigest()

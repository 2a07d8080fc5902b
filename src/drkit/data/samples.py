"""Per-sample keys and content hashes: what a store records about each sample so that it can be
replayed on another copy of its dataset (files listed in another order, some missing or changed).

A sample's *key* is :meth:`ImageDataset.key` (image folders: the file's path relative to the root,
webdataset: ``__key__``, arrays and wrapped datasets: the row index), stored as UTF-8 in a
fixed-width bytes field. Its *content hash* is 8 bytes of BLAKE2b over the decoded image's shape
and uint8 pixels (:func:`content_hash`): a second copy of the data decodes to the same pixels, so
the hash does not depend on file names, order or encoder metadata. The label is kept beside them, so
a relabelled sample is reported as changed.

One shard's table is a ``.npy`` array of shape ``(samples,)`` with the dtype
:func:`key_dtype`: ``key`` (``S<width>``, the shard's longest key, at most
:data:`MAX_KEY_BYTES`), ``hash`` (``<u8``) and ``label`` (``<u4``) — plain bytes and integers,
read with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..errors import DataError
from .base import FittedDataset, ImageDataset
from .folders import ImageFolderDataset

__all__ = ["MAX_KEY_BYTES", "HASH_NAME", "content_hash", "encode_key", "key_dtype", "key_table",
           "is_key_dtype", "key_table_problem", "key_scheme", "dataset_keys", "content_hashes"]

MAX_KEY_BYTES = 1024  # a key longer than this (UTF-8) is refused: the table is fixed-width
HASH_NAME = "blake2b-64(shape <i8, uint8 pixels)"  # what settings.sample_keys.hash records
_BLOCK = 4096  # images hashed per batch of thread-pool tasks


def content_hash(image: torch.Tensor) -> int:
    """8 bytes of BLAKE2b of ``image``'s shape (as little-endian int64) and its uint8 pixels, as an
    unsigned int: the same for the same decoded image whatever its file is called or where it lies."""
    h = hashlib.blake2b(digest_size=8)
    h.update(np.asarray(image.shape, dtype="<i8").tobytes())
    h.update(image.contiguous().numpy().tobytes())
    return int.from_bytes(h.digest(), "little")


def encode_key(key: str, where: str = "") -> bytes:
    """``key`` as UTF-8, checked: a non-empty str without NUL (a fixed-width field strips trailing
    NULs), at most :data:`MAX_KEY_BYTES` bytes."""
    if not isinstance(key, str) or not key:
        raise DataError(f"{where}sample key {key!r} is not a non-empty str: ImageDataset.key(i) must name each sample")
    try:
        raw = key.encode("utf-8")
    except UnicodeEncodeError as e:  # lone surrogates from undecodable file names
        raise DataError(f"{where}sample key {key!r} is not valid Unicode ({e}); rename the file") from None
    if b"\0" in raw:
        raise DataError(f"{where}sample key {key!r} contains a NUL character; keys must be plain text")
    if len(raw) > MAX_KEY_BYTES:
        raise DataError(f"{where}sample key {key[:60]!r}... is {len(raw)} bytes in UTF-8, more than the "
                        f"{MAX_KEY_BYTES} a store keeps; shorten the file or sample names")
    return raw


def key_dtype(width: int) -> np.dtype:
    """The dtype of a key table whose longest key has ``width`` bytes."""
    return np.dtype([("key", f"S{int(width)}"), ("hash", "<u8"), ("label", "<u4")])


def is_key_dtype(dt: np.dtype) -> bool:
    """Whether ``dt`` is a key table's dtype (any width from 1 to :data:`MAX_KEY_BYTES`)."""
    names = dt.names or ()
    if names != ("key", "hash", "label"):
        return False
    key = dt.fields["key"][0]
    return key.kind == "S" and 1 <= key.itemsize <= MAX_KEY_BYTES and dt == key_dtype(key.itemsize)


def key_table_problem(table: np.ndarray) -> str | None:
    """What is wrong with a key table's keys (an empty key, a NUL inside one, a key that is not
    UTF-8), or None; vectorised, for ``verify`` of millions of keys. The whole column is decoded at
    once: with no field starting on a UTF-8 continuation byte, every field boundary is a character
    boundary, so the column is valid UTF-8 exactly when every key is."""
    keys = np.ascontiguousarray(table["key"])
    width = keys.dtype.itemsize
    if len(keys) == 0:
        return None
    raw = keys.view(np.uint8).reshape(len(keys), width)
    if (raw[:, 0] == 0).any():
        return f"an empty sample key (row {int(np.argmax(raw[:, 0] == 0))})"
    if width > 1 and ((raw[:, :-1] == 0) & (raw[:, 1:] != 0)).any():
        return "a NUL inside a sample key"
    if ((raw[:, 0] & 0xC0) == 0x80).any():
        return f"a sample key that is not UTF-8 (row {int(np.argmax((raw[:, 0] & 0xC0) == 0x80))})"
    try:
        raw.tobytes().decode("utf-8")
    except UnicodeDecodeError as e:
        return f"a sample key that is not UTF-8 (row {e.start // width}: {e.reason})"
    return None


def key_table(keys: Sequence[str], hashes: Sequence[int] | np.ndarray, labels: Sequence[int] | np.ndarray,
              *, where: str = "") -> np.ndarray:
    """The key table of one shard: keys (checked, UTF-8), hashes and labels, in sample order."""
    raw = [encode_key(k, where) for k in keys]
    out = np.zeros(len(raw), dtype=key_dtype(max((len(r) for r in raw), default=1) or 1))
    out["key"] = raw
    out["hash"] = np.asarray(hashes, dtype=np.uint64)
    out["label"] = np.asarray(labels, dtype=np.int64)
    return out


def key_scheme(dataset: ImageDataset) -> str:
    """What a dataset's keys are, for the store's settings and its dataset card: the dataset's own
    ``key_scheme`` attribute when it has one, else ``relative-path`` for image folders and ``index``
    for datasets that keep :meth:`ImageDataset.key`'s default."""
    scheme = getattr(dataset, "key_scheme", None)
    if isinstance(scheme, str) and scheme:
        return scheme
    if isinstance(dataset, FittedDataset):
        return key_scheme(dataset.dataset)
    if isinstance(dataset, ImageFolderDataset):
        return "relative-path"
    if type(dataset).key is ImageDataset.key:
        return "index"
    return f"{type(dataset).__name__}.key"


def dataset_keys(dataset: ImageDataset, indices: Sequence[int] | np.ndarray | None = None) -> list[str]:
    """The keys of ``indices`` (default: every sample), checked as :func:`encode_key` does."""
    idx = range(len(dataset)) if indices is None else indices
    keys = [dataset.key(int(i)) for i in idx]
    for k in keys:
        encode_key(k, f"{dataset.name}: ")
    return keys


def content_hashes(dataset: ImageDataset, indices: Sequence[int] | np.ndarray, *,
                   threads: int | None = None) -> np.ndarray:
    """:func:`content_hash` of each of ``indices`` (``uint64``), decoded on ``threads`` threads
    (image decoders release the GIL): the one full pass that matching another copy by content needs."""
    threads = threads or min(8, os.cpu_count() or 1)
    out = np.zeros(len(indices), dtype=np.uint64)
    if len(indices) == 0:
        return out
    indices = np.asarray(indices, dtype=np.int64)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for a in range(0, len(indices), _BLOCK):  # map() submits every item at once: bound the futures held
            block = indices[a : a + _BLOCK]
            out[a : a + len(block)] = list(pool.map(lambda i: content_hash(dataset.image(int(i))), block))
    return out

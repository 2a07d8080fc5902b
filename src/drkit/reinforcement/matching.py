"""Which store row each sample of a dataset replays: the same dataset by position (its fingerprint
matches: the fast path), another copy of it by sample key and content hash (issue 23).

A store of schema 3 records per sample its key (:meth:`~drkit.data.ImageDataset.key`: an image
folder's relative path, a webdataset ``__key__``, a row index), a hash of its decoded pixels and its
label (:mod:`drkit.data.samples`). A copy of the data whose files are listed in another order
matches every sample by key; samples missing on either side, or with the same key but other pixels
or another label, are counted and named (a few example keys) in a :class:`SampleMismatchError`,
unless the caller asks to use the matching ones only (``only_matching``), when the same report is
logged. Matching by key decodes every sample of the dataset once (the content hash), on threads.

Stored records keep store rows throughout — the augmentation parameters are a pure function of
(seed, store row, augmentation), and a mixing record names its partner by store row — so replay
maps rows to the dataset's samples with :meth:`SampleMatch.base_of_row` and never the reverse.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data import ImageDataset
from ..data.samples import content_hashes, dataset_keys
from ..errors import ConfigError, DataError, StoreMismatchError

__all__ = ["MATCH_MODES", "EXAMPLES", "SampleMatch", "SampleMismatchError", "match_samples"]

log = logging.getLogger(__name__)

MATCH_MODES = ("auto", "position", "key")
EXAMPLES = 5  # example keys named per kind of difference


class SampleMismatchError(StoreMismatchError):
    """The dataset matches the store by key only in part; ``match`` (a :class:`SampleMatch`) says how."""

    def __init__(self, message: str, match: SampleMatch) -> None:
        super().__init__(message)
        self.match = match


@dataclass(frozen=True)
class SampleMatch:
    """The samples of a dataset that replay a store, and what did not match.

    ``base_index[t]`` (a sample of the dataset, in the dataset's order) replays store row
    ``rows[t]``; :meth:`base_of_row` goes back from a row (a mixing partner) to its sample, -1
    where the dataset lacks it."""

    by: str  # "position" (the fingerprint matched) or "key"
    base_index: np.ndarray  # int64 (matched,)
    rows: np.ndarray  # int64 (matched,)
    store_samples: int
    data_samples: int
    missing_in_data: int = 0  # store rows no sample of the dataset has
    missing_in_store: int = 0  # samples of the dataset whose key the store lacks
    changed: int = 0  # same key, other pixels or another label
    examples: dict[str, list[str]] = field(default_factory=dict)
    where: str = ""
    data_name: str = ""
    row_to_base: np.ndarray | None = None  # int64 (store_samples,); None: the identity
    fingerprint: str = ""  # what differed in the fingerprint, when matched by key for that reason

    @property
    def matched(self) -> int:
        return len(self.rows)

    @property
    def complete(self) -> bool:
        """Every sample on both sides matched."""
        return not (self.missing_in_data or self.missing_in_store or self.changed)

    @property
    def identity(self) -> bool:
        return self.row_to_base is None

    def base_of_row(self, row: int) -> int:
        """The dataset's sample that replays store row ``row`` (-1: the dataset lacks it)."""
        return int(row) if self.row_to_base is None else int(self.row_to_base[row])

    def report(self) -> dict[str, Any]:
        """Counts and example keys (what ``drkit verify --json`` prints under ``match``)."""
        return {"by": self.by, "store_samples": self.store_samples, "data_samples": self.data_samples,
                "matched": self.matched, "missing_in_data": self.missing_in_data,
                "missing_in_store": self.missing_in_store, "changed": self.changed, "complete": self.complete,
                "examples": self.examples, **({"fingerprint": self.fingerprint} if self.fingerprint else {})}

    def describe(self) -> str:
        """One paragraph: how many matched, what is missing or changed (with example keys)."""
        if self.by == "position":
            return f"{self.data_name} is the dataset {self.where} was made from ({self.matched:,} samples)"
        head = f"{self.data_name} matches {self.where} by sample key for {self.matched:,} of {self.store_samples:,} samples"
        parts = []
        for count, kind, what in ((self.missing_in_data, "missing_in_data", "of the store's samples are missing "
                                   "from the data"),
                                  (self.missing_in_store, "missing_in_store", "samples of the data are not in the store"),
                                  (self.changed, "changed", "samples changed (same key, other pixels or label)")):
            if count:
                eg = ", ".join(repr(k) for k in self.examples.get(kind, []))
                parts.append(f"{count:,} {what} (e.g. {eg})")
        if not parts:
            return f"{head} (all of them; the data lists them in another order)"
        return f"{head}: " + "; ".join(parts)

    def require(self, *, only_matching: bool = False) -> None:
        """Raise :class:`SampleMismatchError` unless every sample matched; with ``only_matching``,
        log the report instead (an error still when nothing matched)."""
        if self.complete:
            if self.by == "key":
                log.info("%s", self.describe())
            return
        if only_matching and self.matched:
            log.warning("%s; using the %d matching samples only", self.describe(), self.matched)
            return
        why = f"{self.fingerprint}; " if self.fingerprint else ""
        if not self.matched:
            raise SampleMismatchError(f"{why}{self.describe()}: no sample matches; use the data the store was made "
                                      "from", self)
        raise SampleMismatchError(
            f"{why}{self.describe()}. Train on the {self.matched:,} matching samples only with only_matching=True "
            "(CLI: --only-matching), or use the copy of the data the store was made from", self)


def _identity(store: Any, dataset: ImageDataset) -> SampleMatch:
    n = store.num_samples
    idx = np.arange(n, dtype=np.int64)
    return SampleMatch("position", idx, idx, n, n, where=str(store.root), data_name=dataset.name)


def _decode(keys: np.ndarray) -> list[str]:
    return [k.decode("utf-8", "replace") for k in keys.tolist()]


def match_samples(store: Any, dataset: ImageDataset, *, by: str = "auto") -> SampleMatch:
    """Match ``dataset`` to ``store`` (a :class:`~drkit.reinforcement.store.Store`).

    ``by``: ``"auto"`` — by position when the fingerprint matches, else by key; ``"position"`` —
    the fingerprint must match (:class:`~drkit.errors.StoreMismatchError` otherwise); ``"key"`` —
    by key and content even when the fingerprint matches. Only the structure is checked here (a
    store without keys, another number of classes or channels is an error); samples missing or
    changed are in the result, for :meth:`SampleMatch.require`.
    """
    if by not in MATCH_MODES:
        raise ConfigError(f"match must be one of {', '.join(MATCH_MODES)}, got {by!r}")
    where = str(store.root)
    problem = None
    if by != "key":
        problem = store.fingerprint_problem(dataset)
        if problem is None:
            return _identity(store, dataset)
        if by == "position":
            raise StoreMismatchError(f"{problem}; open it with the dataset it was reinforced from"
                                     + (", or match another copy by key (match='key')" if store.has_sample_keys
                                        else ""))
    if not store.has_sample_keys:
        reason = problem or store.fingerprint_problem(dataset) or f"{where} cannot be matched by key"
        raise StoreMismatchError(
            f"{reason}; the store has no sample keys (schema {store.manifest['schema_version']}): it replays by "
            "position only, on the dataset it was made from (re-create it with this drkit to match copies by key)")
    want = store.settings["dataset"]
    if dataset.num_classes != store.num_classes:
        raise StoreMismatchError(f"{where} has {store.num_classes} classes, {dataset.name} {dataset.num_classes}: "
                                 "the stored targets cannot be used with these labels")
    if tuple(dataset.image_shape)[0] != want["image_shape"][0]:
        raise StoreMismatchError(f"{where} was made from images of {want['image_shape'][0]} channels, "
                                 f"{dataset.name} has {dataset.image_shape[0]}")

    keys = dataset_keys(dataset)
    if len(set(keys)) != len(keys):
        seen: set[str] = set()
        dup = next(k for k in keys if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise DataError(f"{dataset.name}: sample key {dup!r} names more than one sample: it cannot be matched to "
                        f"{where} by key")
    rows = store.rows_for(keys)
    present = np.flatnonzero(rows >= 0)
    examples: dict[str, list[str]] = {}
    absent = np.flatnonzero(rows < 0)
    if len(absent):
        examples["missing_in_store"] = [keys[i] for i in absent[:EXAMPLES]]
    covered = np.zeros(store.num_samples, dtype=bool)
    covered[rows[present]] = True
    uncovered = np.flatnonzero(~covered)
    if len(uncovered):
        examples["missing_in_data"] = _decode(store.sample_keys()[uncovered[:EXAMPLES]])

    log.info("matching %s to %s by sample key: hashing %d images", dataset.name, where, len(present))
    hashes = content_hashes(dataset, present)
    labels = np.asarray(dataset.labels, dtype=np.int64)[present]
    same = (store.sample_hashes()[rows[present]] == hashes) & (store.sample_labels()[rows[present]] == labels)
    changed = present[~same]
    if len(changed):
        examples["changed"] = [keys[i] for i in changed[:EXAMPLES]]
    ok = present[same]
    row_to_base = np.full(store.num_samples, -1, dtype=np.int64)
    row_to_base[rows[ok]] = ok
    return SampleMatch("key", ok.astype(np.int64), rows[ok].astype(np.int64), store.num_samples, len(dataset),
                       missing_in_data=len(uncovered), missing_in_store=len(absent), changed=len(changed),
                       examples=examples, where=where, data_name=dataset.name, row_to_base=row_to_base,
                       fingerprint=problem or "")

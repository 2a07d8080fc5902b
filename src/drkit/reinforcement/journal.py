"""The shard journal of a run in progress: one line appended per shard written, so that recording a
shard costs the same at the 10th shard as at the 10,000th.

Rewriting ``manifest.json`` after every shard (what drkit did until 0.2) costs time linear in the
shards already listed — JSON, a checksum per entry, an fsync: 42 ms at 1,250 shards, about 26 s
summed over a 1.28 M-sample run and quadratic in the number of shards (``docs/benchmarks.md``,
scale section). Instead each completed shard's entry is appended to ``manifest.journal`` (one
canonical-JSON line with a checksum bound to the store's settings, flushed and fsynced), and the
manifest is rewritten only when the journal has grown as long as the manifest's shard list
(so the rewrites add up to a constant factor of the entries written), and at the end.

A resumed run folds the journal into the manifest (:func:`read_journal`). The journal is data,
parsed with :func:`json.loads` and checked like a manifest entry; a line that does not check out
(cut short by a kill mid-append, damaged) is skipped and its shard computed again. Only the writer of
a store reads its journal: :meth:`drkit.Store.open` opens complete stores, which have none.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .manifest import ShardEntry, canonical_json, entry_sha256

__all__ = ["JOURNAL", "FOLD_MIN", "ShardJournal", "read_journal"]

log = logging.getLogger(__name__)

JOURNAL = "manifest.journal"
FOLD_MIN = 16  # journal entries before the first fold into the manifest
_MAX_LINE = 4096  # an entry is ~300 bytes; a longer line is damage, not an entry


class ShardJournal:
    """Appends shard entries to ``root / JOURNAL``, each durable (fsync) before :meth:`append` returns."""

    def __init__(self, root: Path, settings_checksum: str) -> None:
        self.path = root / JOURNAL
        self.settings_checksum = settings_checksum
        self.lines = 0  # entries appended since the journal was last cleared
        self._file: Any = None

    def append(self, entry: Mapping[str, Any]) -> None:
        if self._file is None:
            self._file = open(self.path, "ab")  # noqa: SIM115 - held open across appends, closed by clear/close
        line = canonical_json({"entry": dict(entry), "sha256": entry_sha256(entry, self.settings_checksum)})
        self._file.write(line + b"\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.lines += 1

    def due(self, listed: int) -> bool:
        """Whether to fold the journal into a manifest that lists ``listed`` shards: once it is as
        long as that list (and at least ``FOLD_MIN``), so the rewrites add up to O(shards)."""
        return self.lines >= max(FOLD_MIN, listed)

    def clear(self) -> None:
        """Remove the journal (its entries are in a manifest written before this call)."""
        self.close()
        self.path.unlink(missing_ok=True)
        self.lines = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _entry(line: bytes, settings_checksum: str) -> dict[str, Any] | None:
    """The shard entry on one journal line, or None when the line does not check out."""
    if len(line) > _MAX_LINE:
        return None
    try:
        item = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError: a line cut short
        return None
    if not isinstance(item, dict) or set(item) != {"entry", "sha256"} or not isinstance(item["entry"], dict):
        return None
    entry = item["entry"]
    try:  # the manifest's own schema of a shard entry: strict types (True is not 1), bounds, file names
        ShardEntry.model_validate(entry)
    except ValidationError:
        return None
    if "entry_sha256" in entry or item["sha256"] != entry_sha256(entry, settings_checksum):
        return None
    return entry


def read_journal(root: Path, settings_checksum: str) -> list[dict[str, Any]]:
    """The shard entries in ``root``'s journal whose checksum matches ``settings_checksum``, in
    the order written (the manifest's own checks apply to them once they are folded in)."""
    path = root / JOURNAL
    if not path.is_file():
        return []
    entries, skipped = [], 0
    with open(path, "rb") as f:
        for line in f:
            entry = _entry(line.rstrip(b"\n"), settings_checksum)
            if entry is None:
                skipped += 1
            else:
                entries.append(entry)
    if skipped:
        log.warning("%s: %d line(s) that do not check out (a run killed mid-write?) are skipped; their shards "
                    "are computed again", path, skipped)
    return entries

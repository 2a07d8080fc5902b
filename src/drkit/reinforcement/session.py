"""The writing side of a run, shared by every engine: the lock, complete shards kept on resume,
each new shard written atomically and recorded in the journal (:mod:`.journal`; folded into the
manifest as it grows), and the store marked complete.

A store begun by an older drkit (schema 1 or 2, no sample keys) is resumed as schema 3: the key
tables of its complete shards are made from the dataset (one decode per sample, no teacher), so
the finished store is the one a fresh run writes, byte for byte."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .._version import __version__
from ..data.samples import content_hashes, key_table
from ..errors import StoreMismatchError
from .journal import JOURNAL, ShardJournal, read_journal
from .manifest import keys_file_name, sealed_settings_sha256, shard_file_name
from .plan import RunPlan, settings_diff
from .store import FORMAT, MANIFEST, SCHEMA_VERSION, ShardInfo, Store, read_manifest, shard_ranges
from .writer import ShardWriter, write_manifest

log = logging.getLogger(__name__)

class StoreSession:
    """The writing side of a run, shared by every engine: creates ``out``, keeps the complete
    shards of an interrupted run (listed in its manifest or its journal), writes each new shard
    atomically (:class:`ShardWriter`, in any order) and appends it to the journal, folds the
    journal into the manifest (shard list sorted) whenever the journal is as long as the
    manifest's list, and marks the store complete at the end.

    ``pending`` lists the ``(shard index, first sample, end sample)`` still to compute.
    """

    def __init__(self, plan: RunPlan) -> None:
        root = self.root = plan.root
        try:
            root.mkdir(parents=True)
            self.created = True  # by this process: abort() may remove it again (only if empty)
        except FileExistsError:
            self.created = False
        # one writer per store: a second one fails here (StoreLockedError naming the holder's PID),
        # having changed nothing
        self.writer = ShardWriter(root, lock=True)
        try:
            manifest = plan.manifest
            if (root / MANIFEST).is_file():  # re-read under the lock: another run may have written it since the plan
                manifest = read_manifest(root)
                differ = settings_diff(manifest["settings"], plan.settings)
                if differ:
                    raise StoreMismatchError(
                        f"{root} already holds a store made from other settings ({', '.join(differ[:6])} differ); "
                        "choose another --out, or delete it to start over")
            self.fresh = manifest is None  # then the manifest is this run's, and abort() may remove it
            self.writer.clean_temporaries()
            checksum = sealed_settings_sha256(plan.settings)  # what write_manifest binds entries to
            self.done: dict[int, dict[str, Any]] = {}
            if manifest is not None:
                ranges = {r[0]: r for r in shard_ranges(len(plan.dataset), plan.config.shard_size)}
                for s in [*manifest["shards"], *read_journal(root, checksum)]:
                    if self._on_disk(s, ranges):
                        self.done[s["index"]] = s
                self._add_keys(plan)
            self.manifest = {"format": FORMAT, "schema_version": SCHEMA_VERSION, "drkit_version": __version__,
                             "complete": False, "settings": plan.settings,
                             "shards": [self.done[k] for k in sorted(self.done)]}
            write_manifest(root, self.manifest)  # the journal folded in: start it anew
            self.journal = ShardJournal(root, checksum)
            self.journal.clear()
        except BaseException:
            self.writer.close()
            self._remove_created_dir()
            raise
        self.plan = plan
        self.num_augs = plan.config.num_augs
        self.source_bytes = plan.dataset.nbytes()
        self.pending = [r for r in shard_ranges(len(plan.dataset), plan.config.shard_size) if r[0] not in self.done]
        self.total = sum((b - a) * self.num_augs for _, a, b in self.pending)
        log.info("reinforcing %s: %d shards to do (%d already done), %d records", plan.dataset.name,
                 len(self.pending), len(self.done), self.total)

    def _on_disk(self, s: dict[str, Any], ranges: dict[int, tuple[int, int, int]]) -> bool:
        """Whether the shard entry ``s`` (from the manifest or the journal) is this run's shard
        ``s["index"]`` and its files are on disk at the sizes it records."""
        if ranges.get(s["index"]) != (s["index"], s["start"], s["stop"]) or s["file"] != shard_file_name(
                s["index"]) or s.get("keys_file", keys_file_name(s["index"])) != keys_file_name(s["index"]):
            return False
        files = [(s["file"], s["bytes"])] + ([(s["keys_file"], s["keys_bytes"])] if "keys_file" in s else [])
        return all((self.root / f).is_file() and (self.root / f).stat().st_size == n for f, n in files)

    def _add_keys(self, plan: RunPlan) -> None:
        """Key tables for the complete shards of a store begun without them (schema 1 or 2)."""
        old = [s for s in self.done.values() if "keys_file" not in s]
        if old:
            log.info("%s: making the sample keys of %d shards written by an older drkit", self.root, len(old))
        for s in old:
            keys = self._key_table(plan, s["start"], s["stop"])
            name = self.writer.keys_file_name(s["index"])
            size, digest = self.writer.save(name, keys)
            info = ShardInfo(**{k: v for k, v in s.items() if k != "entry_sha256"})
            self.done[s["index"]] = {**info.to_dict(), "keys_file": name, "keys_bytes": size, "keys_sha256": digest}

    @staticmethod
    def _key_table(plan: RunPlan, a: int, b: int) -> np.ndarray:
        """The key table of samples ``a..b`` made from the dataset (one decode per sample)."""
        return key_table([plan.dataset.key(i) for i in range(a, b)], content_hashes(plan.dataset, range(a, b)),
                         plan.dataset.labels[a:b], where=f"{plan.dataset.name}: ")

    def add(self, index: int, start: int, records: np.ndarray, keys: np.ndarray | None = None) -> None:
        """Write one computed shard and its key table (made from the dataset when ``keys`` is None:
        the engines hand over the one their workers made while decoding), then its journal entry."""
        if index in self.done:  # a shard computed twice (a retried task) is written once
            return
        if keys is None:
            keys = self._key_table(self.plan, start, start + len(records))
        self.done[index] = self.writer.write(index, start, records, keys).to_dict()
        self.journal.append(self.done[index])
        if self.journal.due(len(self.manifest["shards"])):
            self._write_manifest()

    def _write_manifest(self) -> None:
        """The manifest with every shard done, then the journal (now folded in) removed."""
        self.manifest["shards"] = [self.done[k] for k in sorted(self.done)]
        write_manifest(self.root, self.manifest)
        self.journal.clear()

    def _remove_created_dir(self) -> None:
        if self.created:
            try:
                self.root.rmdir()
            except OSError:  # not empty: files this run did not make are left alone
                pass

    def abort(self) -> None:
        """After a failure or an interrupt: drop temporaries and release the lock; if nothing was
        written, remove what this run created (its manifest, the directory if it made it) and
        nothing else."""
        try:
            self.writer.clean_temporaries()
            journal = getattr(self, "journal", None)  # kept (with the shards it lists) for a resume
            if journal is not None:
                journal.close()
            if self.fresh and not self.done:
                (self.root / MANIFEST).unlink(missing_ok=True)
                (self.root / JOURNAL).unlink(missing_ok=True)
        finally:
            self.writer.close()
            if self.fresh and not self.done:
                self._remove_created_dir()

    def finish(self, seconds: float, **stats: Any) -> Store:
        """Mark the store complete, release the lock and open it, with ``run_stats`` of this call."""
        try:
            self.manifest["complete"] = True
            self._write_manifest()
        finally:
            self.writer.close()
        store = Store.open(self.root)
        store.run_stats = {"records_computed": self.total, "seconds": seconds,
                           "records_per_s": self.total / seconds if seconds > 0 else 0.0,
                           "source_bytes": self.source_bytes, **stats}
        return store

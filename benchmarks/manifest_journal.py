"""What recording a shard costs as a run grows: the manifest rewritten after every shard (drkit
before the journal) against the shard journal (one fsynced line per shard, folded into the
manifest when the journal is as long as its list; :mod:`drkit.reinforcement.journal`).

Both sides do exactly the bookkeeping :class:`~drkit.reinforcement.session.StoreSession` does per
shard, on real files (JSON, checksums, fsync, rename), with the settings of a real store and shard
entries of its shape; the shards themselves are not written (their cost is the same either way).
Reported: total seconds for N shards (the run's final manifest write included) and the cost of
the last shard's bookkeeping (how it grows with N).

Run (about 3 minutes on 2 CPU cores; the rewrite side grows with the square of the shards: 12,500 would take over an hour)::

    python -m benchmarks.manifest_journal --shards 1250,2500 --json benchmarks/results/manifest_journal.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import drkit
from benchmarks._common import environment, record
from drkit.reinforcement.journal import ShardJournal
from drkit.reinforcement.manifest import keys_file_name, settings_sha256, shard_file_name
from drkit.reinforcement.store import FORMAT, SCHEMA_VERSION
from drkit.reinforcement.writer import write_manifest


def _settings(work: Path) -> dict[str, Any]:
    """The settings of a real (tiny) store, so the manifest is the size it is in a real run."""
    ds = drkit.load_dataset("digits").subset(np.arange(32))
    torch_teacher = drkit.create_model("smallcnn-4", in_chans=1, num_classes=10, image_size=(8, 8))
    store = drkit.reinforce(ds, torch_teacher, work / "tiny", policy="randaugment", num_augs=2, topk=5,
                            allow_random_teacher=True, progress=False, num_workers=0)
    return store.settings


def _entry(i: int) -> dict[str, Any]:
    return {"index": i, "start": i * 1024, "stop": (i + 1) * 1024, "file": shard_file_name(i), "bytes": 297_088,
            "sha256": f"{i:064x}", "keys_file": keys_file_name(i), "keys_bytes": 24_704, "keys_sha256": f"{i:064x}"}


def rewrite_every_shard(root: Path, settings: dict[str, Any], n: int) -> tuple[float, float]:
    manifest = {"format": FORMAT, "schema_version": SCHEMA_VERSION, "complete": False, "settings": settings,
                "shards": []}
    t0 = last = time.perf_counter()
    for i in range(n):
        last = time.perf_counter()
        manifest["shards"].append(_entry(i))
        write_manifest(root, manifest)
    end = time.perf_counter()
    return end - t0, end - last  # the last rewrite is also the run's final write


def journal(root: Path, settings: dict[str, Any], n: int) -> tuple[float, float]:
    manifest = {"format": FORMAT, "schema_version": SCHEMA_VERSION, "complete": False, "settings": settings,
                "shards": []}
    j = ShardJournal(root, settings_sha256(settings))
    done: list[dict[str, Any]] = []
    t0 = last = time.perf_counter()
    for i in range(n):
        last = time.perf_counter()
        done.append(_entry(i))
        j.append(done[-1])
        if j.due(len(manifest["shards"])):
            manifest["shards"] = list(done)
            write_manifest(root, manifest)
            j.clear()
    last = time.perf_counter() - last  # the last shard's bookkeeping, before the run's final write
    manifest["shards"], manifest["complete"] = list(done), True  # the end of the run
    write_manifest(root, manifest)
    j.clear()
    return time.perf_counter() - t0, last


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shards", default="1250,2500", help="comma-separated shard counts")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="drkit-journal-") as tmp:
        work = Path(tmp)
        settings = _settings(work)
        for n in [int(x) for x in args.shards.split(",")]:
            for name, fn in (("rewrite every shard", rewrite_every_shard), ("journal", journal)):
                root = work / f"{name.split()[0]}-{n}"
                root.mkdir()
                total, last = fn(root, settings, n)
                rows.append({"shards": n, "method": name, "total_s": total, "per_shard_ms": 1e3 * total / n,
                             "last_shard_ms": 1e3 * last})
                print(f"{n} shards, {name}: {total:.2f} s in all, {1e3 * total / n:.2f} ms/shard, "
                      f"last shard {1e3 * last:.2f} ms", flush=True)
    record("manifest_journal", vars(args), args.json, environment=environment(), results=rows)


if __name__ == "__main__":
    main()

"""Random-read latency of one stored record, in microseconds (median and p99).

Three ways of reading a uniformly random (sample, augmentation) record of an open store:

- ``store.record(i, j)``: the public API (bounds checks, shard lookup, memory-mapped row);
- ``memmap[r, j]``: the raw numpy memmap index (``store._shard(s)[r, j]`` with the shard
  and row precomputed) -- the floor the API sits on;
- ``record + densify``: ``store.record(i, j)`` then ``drkit.densify(probs, classes, C)`` to the
  full ``C``-class float32 target a training step consumes.

The shards are opened (and their sha256 checksums verified) once before timing, so the
figures are warm-page-cache latencies of an open store, not cold disk reads. Each call is timed
on its own with ``time.perf_counter_ns`` (its ~0.05 us overhead is included in the figures).

The store is made as in ``store_size.py``: a synthetic 1000-class dataset, the template
teacher, k=10 (``--store PATH`` times an existing store instead).

Run (about half a minute on 2 CPU cores)::

    python -m benchmarks.random_read --json benchmarks/results/random_read.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import drkit
from benchmarks._common import environment, record
from benchmarks.store_size import TemplateTeacher, synthetic_dataset


def make_store(out: Path, args: argparse.Namespace) -> drkit.Store:
    dataset, templates = synthetic_dataset(args.samples, args.classes)
    return drkit.reinforce(dataset, TemplateTeacher(templates, tau=3.0), out, policy=args.policy,
                           num_augs=args.num_augs, topk=args.topk, shard_size=args.shard_size,
                           device="cpu", progress=False)


def time_calls(fn: Callable[[int], object], n: int, warmup: int = 1000) -> np.ndarray:
    """Nanoseconds of each of ``n`` calls ``fn(t)`` (``t`` = call number), after a warm-up."""
    for t in range(min(warmup, n)):
        fn(t)
    out = np.empty(n, dtype=np.int64)
    clock = time.perf_counter_ns
    for t in range(n):
        t0 = clock()
        fn(t)
        out[t] = clock() - t0
    return out


def summarize(name: str, ns: np.ndarray) -> dict[str, Any]:
    us = ns / 1000.0
    return {"method": name, "calls": int(len(ns)), "median_us": float(np.median(us)),
            "p99_us": float(np.percentile(us, 99)), "mean_us": float(us.mean()),
            "min_us": float(us.min())}


def measure(store: drkit.Store, n: int, seed: int = 0) -> list[dict[str, Any]]:
    for s in range(len(store.shards)):  # open every shard once: checksums verified here, not timed
        store._shard(s)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, store.num_samples, n)
    aug = rng.integers(0, store.num_augs, n)
    shard_size = store.settings["shard_size"]
    shard_of, row_of = idx // shard_size, idx % shard_size
    maps = [store._shard(s) for s in range(len(store.shards))]
    idx_l, aug_l, shard_l, row_l = idx.tolist(), aug.tolist(), shard_of.tolist(), row_of.tolist()
    classes = store.num_classes
    dense = store.dense
    record = store.record

    def api(t: int) -> object:
        return record(idx_l[t], aug_l[t])

    def raw(t: int) -> object:
        return maps[shard_l[t]][row_l[t], aug_l[t]]

    def api_densify(t: int) -> object:
        rec = record(idx_l[t], aug_l[t])
        return drkit.densify(rec["probs"], None if dense else rec["classes"], classes)

    torch.set_grad_enabled(False)
    return [
        summarize("store.record(i, j)", time_calls(api, n)),
        summarize("memmap[r, j] (store._shard(s))", time_calls(raw, n)),
        summarize(f"store.record + densify to {classes} classes", time_calls(api_densify, n)),
    ]


def markdown(rows: list[dict[str, Any]]) -> str:
    out = ["| read | calls | median µs | p99 µs | mean µs |", "|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['method']} | {r['calls']} | {r['median_us']:.2f} | {r['p99_us']:.2f} | {r['mean_us']:.2f} |")
    return "\n".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--store", type=Path, default=None, help="time this existing store instead of making one")
    p.add_argument("--calls", type=int, default=100_000, help="timed random reads per method")
    p.add_argument("--samples", type=int, default=2048, help="synthetic images in the store made")
    p.add_argument("--classes", type=int, default=1000, help="classes of the store made")
    p.add_argument("--num-augs", type=int, default=8, help="augmentations per sample in the store made")
    p.add_argument("--topk", type=int, default=10, help="k of the store made")
    p.add_argument("--shard-size", type=int, default=1024, help="samples per shard in the store made")
    p.add_argument("--policy", default="randaugment", choices=drkit.POLICIES, help="policy of the store made")
    p.add_argument("--json", type=Path, default=None, help="write the results as JSON to this path")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="drkit-random-read-") as tmp:
        store = drkit.Store.open(args.store) if args.store else make_store(Path(tmp) / "store", args)
        if not args.store:
            store = drkit.Store.open(store.root)  # a freshly opened store, no maps open yet
        rows = measure(store, args.calls)
        info = store.summary()
    print(f"store: {info['num_samples']} samples x {info['num_augs']} augs, k={info['topk']}, "
          f"{info['num_classes']} classes, policy {info['policy']}, record {info['record_bytes']} B, "
          f"{info['shards']} shards\n")
    print(markdown(rows))
    record("random_read", vars(args), args.json, environment=environment(),
           store={k: info[k] for k in ("num_samples", "num_augs", "topk", "num_classes", "policy",
                                       "record_bytes", "shards", "bytes")},
           results=rows)


if __name__ == "__main__":
    main()

"""Fuzz a store's manifest and shard files: every case must end in drkit's own error or in
identical data (issue 21).

Each case copies a pristine store (60 digits, 4 shards; one sparse ``randaugment+mixing`` store
with k=3 and one dense ``cropflip`` store), applies one to three random mutations — of the
manifest's fields (a new value of another type or size, a deleted or added key, a bit flip in a
number, a changed character, entries swapped or duplicated), of its raw bytes, or of the shard
files (a bit flip, truncation, extension, files swapped, deleted, linked elsewhere) — then does
what ``drkit verify`` does (``Store.open`` + ``verify()``) and, if that passes, replays the store
(every record, the policy, and the views and targets of a few samples through
``ReinforcedDataset``) and compares it with the pristine replay. Outcomes:

- ``error``: a :class:`drkit.errors.DrkitError` (the answer to damage);
- ``identical``: verified, and the replay is the pristine one (the mutation changed nothing that is
  replayed, e.g. ``drkit_version`` or JSON whitespace);
- ``unrelated_exception``: any other exception — a bug;
- ``hang``: longer than ``--timeout`` seconds — a bug;
- ``silent_change``: verified, but the replay differs — a bug.

Half the cases (``--resealed 0.5``) then *reseal* the manifest — recompute its checksums, as a
deliberate editor or a buggy writer would — so that the fuzz reaches the schema and the checks
behind the checksums. A resealed edit that verifies and changes the replay (say ``ra_num_bins`` 31
-> 11, a valid setting) is consistent data, not damage: it is counted as ``consistent_change``,
apart from the silent changes of the other half. The checksums guard against accident, not intent.

Goal: 0 unrelated exceptions, 0 hangs, 0 silent changes. Run (about 2 minutes for 10,000 cases on 2 CPU cores)::

    python -m benchmarks.store_fuzz --cases 10000 --json benchmarks/results/store_fuzz.json
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import copy
import hashlib
import json
import math
import os
import resource
import shutil
import signal
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import drkit
from benchmarks._common import environment, record
from drkit.errors import DrkitError
from drkit.models import SmallCNN
from drkit.reinforcement.manifest import seal
from drkit.reinforcement.store import MANIFEST, Store

STORES = {  # name -> reinforce settings
    "sparse-mixing": {"policy": "randaugment+mixing", "topk": 3},
    "dense-cropflip": {"policy": "cropflip", "topk": 10},
}
OUTCOMES = ("error", "identical", "unrelated_exception", "hang", "silent_change", "consistent_change")
REPLAYED = (0, 17, 59)  # samples whose views and targets are replayed through ReinforcedDataset


# --------------------------------------------------------------------------- random choices


class Chooser:
    """The random choices of a case: numpy here, hypothesis in the tests (same interface)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def integer(self, lo: int, hi: int) -> int:
        """Uniform in ``lo..hi`` (both included)."""
        return int(self.rng.integers(lo, hi + 1))

    def choice(self, options: Sequence[Any]) -> Any:
        return options[self.integer(0, len(options) - 1)]


def _values(old: Any) -> list[Any]:
    """Replacement values: other types, edges of every bound, and near misses of ``old``."""
    out: list[Any] = [None, True, False, 0, -1, 1, 2, 3, 31, 11, 255, 65535, 65536, 2**31, 2**32, 2**63, 2**64,
                      10**29, -(10**29), 0.0, -0.0, 0.5, 1e-300, 1e300, math.inf, -math.inf, math.nan, "", "1",
                      "x" * 300, "../../x", "/etc/passwd", "shard-00001.npy", "cropflip", "randaugment",
                      "|O", "<u8", [], [1], [8, "1"], [2**40], {}, {"a": 1}, [[[[[[[[[[]]]]]]]]]]]
    if isinstance(old, bool):
        out.append(not old)
    elif isinstance(old, int):
        out += [old + 1, old - 1, -old, float(old), str(old)]
    elif isinstance(old, float):
        out += [old * 2, -old, old + 1e-9, int(old), str(old)]
    elif isinstance(old, str):
        out += [old.upper(), old[:-1], old + "0", old[::-1]]
    elif isinstance(old, list):
        out += [old[:-1], old + old[-1:], old[::-1], [str(v) for v in old]]
    return out


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _nodes(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _nodes(v, (*path, i))


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


def _flip_number(value: int | float, bit: int) -> int | float:
    if isinstance(value, float):
        (raw,) = struct.unpack("<Q", struct.pack("<d", value))
        return struct.unpack("<d", struct.pack("<Q", raw ^ (1 << (bit % 64))))[0]
    return value ^ (1 << (bit % 40))


def mutate_manifest(doc: dict[str, Any], c: Chooser) -> str:
    """Change ``doc`` in place; returns what was done."""
    nodes = [(p, v) for p, v in _nodes(doc) if p]
    path, old = c.choice(nodes)
    parent, key = _parent(doc, path), path[-1]
    kind = c.choice(["replace", "replace", "replace", "delete", "add_key", "flip", "char", "swap", "duplicate"])
    if kind == "replace":
        parent[key] = copy.deepcopy(c.choice(_values(old)))
    elif kind == "delete":
        del parent[key]
    elif kind == "add_key":
        target = old if isinstance(old, dict) else parent if isinstance(parent, dict) else doc
        target[c.choice(["evil", "extra", "index", "file", "sha256", "settings_sha256"])] = c.choice(_values(None))
    elif kind == "flip" and isinstance(old, (int, float)) and not isinstance(old, bool):
        parent[key] = _flip_number(old, c.integer(0, 63))
    elif kind == "char" and isinstance(old, str) and old:
        i = c.integer(0, len(old) - 1)
        parent[key] = old[:i] + c.choice(["0", "f", "/", ".", "\x00", "é", "A"]) + old[i + 1:]
    elif kind == "swap" and isinstance(doc.get("shards"), list) and len(doc["shards"]) >= 2:
        shards = doc["shards"]
        a, b = c.integer(0, len(shards) - 1), c.integer(0, len(shards) - 1)
        if isinstance(shards[a], dict) and isinstance(shards[b], dict):
            keys = sorted(set(shards[a]) & set(shards[b]))
            for k in keys[: c.integer(1, max(1, len(keys)))]:
                shards[a][k], shards[b][k] = shards[b][k], shards[a][k]
        kind += f" shards {a}<->{b}"
    elif kind == "duplicate" and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(old))
    else:
        parent[key] = copy.deepcopy(c.choice(_values(old)))
        kind = "replace"
    return f"{kind} {'.'.join(map(str, path))}"


def mutate_bytes(data: bytes, c: Chooser) -> bytes:
    """A bit flip, a cut, an insertion or a deletion somewhere in ``data``."""
    if not data:
        return b"\x00"
    i = c.integer(0, len(data) - 1)
    kind = c.choice(["flip", "flip", "truncate", "insert", "delete"])
    if kind == "flip":
        return data[:i] + bytes([data[i] ^ (1 << c.integer(0, 7))]) + data[i + 1:]
    if kind == "truncate":
        return data[:i]
    if kind == "insert":
        return data[:i] + c.choice([b"0", b" ", b"\x00", b"]", b"9" * 40]) + data[i:]
    return data[:i] + data[i + 1:]


def mutate_files(root: Path, c: Chooser) -> str:
    shards = sorted(p for p in root.glob("shard-*.npy") if p.is_file() and not p.is_symlink())
    if not shards:
        return "no shard left"
    target = c.choice(shards)
    kind = c.choice(["bytes", "bytes", "swap", "delete", "link_outside", "link_inside", "extend", "directory"])
    if kind == "bytes":
        target.write_bytes(mutate_bytes(target.read_bytes(), c))
    elif kind == "swap":
        other = c.choice(shards)
        tmp = root / "swap.tmp"
        target.rename(tmp)
        other.rename(target) if other != target else None
        tmp.rename(other)
    elif kind == "delete":
        target.unlink()
    elif kind == "link_outside":
        outside = root.parent / f"outside-{target.name}"
        shutil.copyfile(target, outside)
        target.unlink()
        target.symlink_to(outside)
    elif kind == "link_inside":
        other = c.choice(shards)
        if other != target:
            target.unlink()
            target.symlink_to(other.name)
    elif kind == "extend":
        with open(target, "ab") as f:
            f.write(b"\x00" * c.integer(1, 64))
    elif kind == "directory":
        target.unlink()
        target.mkdir()
    return f"{kind} {target.name}"


def reseal(root: Path) -> bool:
    """Recompute the checksums of the manifest at ``root``, if it still has the shape to hold them."""
    path = root / MANIFEST
    try:
        doc = json.loads(path.read_text())
        sealed = seal(doc)
    except Exception:  # the harness's concern, not drkit's: seal() is only given well-formed manifests
        return False
    path.write_text(json.dumps(sealed, indent=2, sort_keys=True))
    return True


def mutate(root: Path, c: Chooser) -> list[str]:
    """One to three mutations of the store at ``root``."""
    done = []
    for _ in range(c.integer(1, 3)):
        where = c.choice(["manifest", "manifest", "manifest", "manifest_bytes", "files"])
        path = root / MANIFEST
        if where == "manifest":
            try:
                doc = json.loads(path.read_text())
            except (ValueError, OSError):  # an earlier mutation broke it: mutate its bytes instead
                where = "manifest_bytes"
            else:
                if isinstance(doc, dict) and doc:
                    done.append(mutate_manifest(doc, c))
                    path.write_text(json.dumps(doc, indent=2, sort_keys=True))
                    continue
                where = "manifest_bytes"
        if where == "manifest_bytes":
            path.write_bytes(mutate_bytes(path.read_bytes(), c))
            done.append("manifest bytes")
        else:
            done.append(mutate_files(root, c))
    return done


# --------------------------------------------------------------------------- the replay and a case


def replay_digest(store: Store, dataset: drkit.ImageDataset) -> str:
    """What training on ``store`` reads: its policy and counts, every record, and the views and
    targets ReinforcedDataset gives for a few samples (every stored augmentation)."""
    h = hashlib.sha256()
    h.update(json.dumps({"policy": store.policy_config.to_dict(), "num_augs": store.num_augs, "topk": store.topk,
                         "classes": store.num_classes, "seed": store.seed, "dense": store.dense,
                         "dtype": str(store.record_dtype)}, sort_keys=True).encode())
    for i in range(store.num_samples):
        h.update(np.ascontiguousarray(store.records(i)).tobytes())
    ds = drkit.ReinforcedDataset(dataset, store)
    for i in REPLAYED:
        for j in range(store.num_augs):
            h.update(ds.replay(i, j).numpy().tobytes())
            h.update(ds.target(i, j).numpy().tobytes())
    return h.hexdigest()


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def on_alarm(*_: Any) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def check(root: Path, dataset: drkit.ImageDataset, expected: str, timeout: float) -> tuple[str, str]:
    """``(outcome, detail)`` of ``drkit verify`` then a replay of the store at ``root``."""
    t0 = time.perf_counter()
    try:
        with time_limit(timeout):
            store = Store.open(root)
            store.verify()
            got = replay_digest(store, dataset)
    except TimeoutError as e:
        return "hang", str(e)
    except DrkitError as e:
        outcome, detail = "error", f"{type(e).__name__}: {str(e)[:300]}"
    except Exception as e:  # what the fuzz is looking for
        return "unrelated_exception", f"{type(e).__name__}: {str(e)[:300]}"
    else:
        outcome, detail = ("identical", "") if got == expected else ("silent_change", "replay differs")
    if time.perf_counter() - t0 > timeout:
        return "hang", f"took {time.perf_counter() - t0:.1f} s"
    return outcome, detail


def make_pristine(root: Path) -> dict[str, tuple[Path, str]]:
    """The stores the cases start from: name -> (directory, replay digest)."""
    dataset = digits60()
    out = {}
    for name, settings in STORES.items():
        torch.manual_seed(0)
        teacher = SmallCNN(1, 10, width=4).eval()
        store = drkit.reinforce(dataset, teacher, root / name, num_augs=3, shard_size=16, teacher_batch=8,
                                batch_size=16, num_workers=0, progress=False, **settings)
        out[name] = (store.root, replay_digest(store, dataset))
    return out


def digits60() -> drkit.ImageDataset:
    return drkit.load_dataset("digits").subset(np.arange(60), name="digits60")  # type: ignore[attr-defined]


def run_case(pristine: Path, work: Path, c: Chooser, dataset: drkit.ImageDataset, expected: str,
             timeout: float, *, resealed: bool = False) -> tuple[str, str, list[str]]:
    """Copy ``pristine`` to ``work`` (emptied first), mutate it (and reseal it), check it."""
    if work.exists():
        shutil.rmtree(work)
    for stale in work.parent.glob("outside-*"):
        stale.unlink()
    shutil.copytree(pristine, work, symlinks=True)
    mutations = mutate(work, c)
    if resealed and reseal(work):
        mutations.append("resealed")
    outcome, detail = check(work, dataset, expected, timeout)
    if outcome == "silent_change" and mutations[-1] == "resealed":
        outcome = "consistent_change"
    return outcome, detail, mutations


def fuzz(cases: int, seed: int, timeout: float, resealed: float = 0.5,
         on_case: Callable[[int], None] | None = None) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    counts: collections.Counter[str] = collections.Counter()
    by_store: dict[str, collections.Counter[str]] = {n: collections.Counter() for n in STORES}
    by_mode: dict[str, collections.Counter[str]] = {m: collections.Counter() for m in ("accidental", "resealed")}
    errors: collections.Counter[str] = collections.Counter()
    bugs: list[dict[str, Any]] = []
    consistent: list[dict[str, Any]] = []  # examples: resealed, valid edits that change the replay
    dataset = digits60()
    with tempfile.TemporaryDirectory() as tmp:
        pristine = make_pristine(Path(tmp) / "pristine")
        work = Path(tmp) / "work" / "store"
        work.parent.mkdir()
        t0 = time.perf_counter()
        for k in range(cases):
            name = list(STORES)[k % len(STORES)]
            root, digest = pristine[name]
            mode = "resealed" if rng.random() < resealed else "accidental"
            outcome, detail, mutations = run_case(root, work, Chooser(rng), dataset, digest, timeout,
                                                  resealed=mode == "resealed")
            counts[outcome] += 1
            by_store[name][outcome] += 1
            by_mode[mode][outcome] += 1
            if outcome == "error":
                errors[detail.split(":")[0]] += 1
            elif outcome == "consistent_change" and len(consistent) < 20:
                consistent.append({"case": k, "store": name, "mutations": mutations})
            elif outcome not in ("identical", "consistent_change") and len(bugs) < 50:
                bugs.append({"case": k, "store": name, "outcome": outcome, "detail": detail, "mutations": mutations})
            if on_case:
                on_case(k)
        seconds = time.perf_counter() - t0
    return {"cases": cases, "counts": {o: counts[o] for o in OUTCOMES},
            "by_store": {n: {o: c[o] for o in OUTCOMES} for n, c in by_store.items()},
            "by_mode": {m: {o: c[o] for o in OUTCOMES} for m, c in by_mode.items()},
            "error_types": dict(errors.most_common()), "bugs": bugs, "consistent_change_examples": consistent, "seconds": round(seconds, 1),
            "ms_per_case": round(1000 * seconds / max(cases, 1), 2),
            "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=10000, help="fuzz cases (default 10000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds after which a case counts as a hang")
    p.add_argument("--resealed", type=float, default=0.5, help="fraction of cases whose manifest is resealed")
    p.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "store_fuzz.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    def progress(k: int) -> None:
        if (k + 1) % 500 == 0:
            print(f"{k + 1} cases", file=sys.stderr, flush=True)

    result = fuzz(args.cases, args.seed, args.timeout, args.resealed, progress)
    out = record("store_fuzz", {"cases": args.cases, "seed": args.seed, "timeout_s": args.timeout,
                                "resealed": args.resealed, "stores": STORES}, args.json, **result,
                 environment=environment())
    print(json.dumps({k: out[k] for k in ("cases", "counts", "by_mode", "seconds", "ms_per_case", "max_rss_mib")},
                     indent=2))
    bad = sum(out["counts"][o] for o in ("unrelated_exception", "hang", "silent_change"))
    for bug in out["bugs"][:10]:
        print(json.dumps(bug), file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())

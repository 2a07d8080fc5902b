"""Scale: how the store's costs grow from 10 k to 1.28 M samples (issue 23, point 3).

A synthetic 1000-class dataset of tiny images (3x8x8 uint8: a random per-class template plus
Gaussian noise, an ``npz:`` file) is reinforced by ``drkit reinforce`` (the CLI, in a subprocess)
with a cheap 1000-way teacher -- the nearest-template classifier of ``store_size.py``, one
192 -> 1000 linear layer -- under ``cropflip`` with top-5, for each size N (and extra ``NxA``
configurations). Per configuration it measures:

- ``reinforce``: records/s and CPU per record of the whole run, the teacher ensemble's own
  forward rate on the same kind of views (``reinforce_throughput.raw_throughput``), and the
  overhead per record with the teacher's cost removed (wall µs per record minus the teacher's);
- ``open``: ``Store.open`` in a cold process (a subprocess; the import of drkit timed apart), and
  where the store has per-sample keys, reading them and ``rows_for`` on all N keys (index built on
  the first call, then a lookup alone);
- ``verify``: ``Store.verify()`` MB/s against ``sha256sum`` on the same ``.npy`` files, both with
  the files in the page cache (so both measure CPU, not the disk), rounds interleaved;
- ``read_warm`` / ``read_cold``: one random ``store.record(i, j)``; warm with every shard mapped
  and in the page cache, cold after dropping the page cache (``/proc/sys/vm/drop_caches`` when
  allowed, else ``posix_fadvise(DONTNEED)`` on each file) and opening the store anew without
  checksums (which would read every shard back in);
- ``dataset_item``: one random ``ReinforcedDataset(sparse=True)[i]`` (replay + top-k target), with
  every shard already mapped;
- ``worker_rss``: one shuffled epoch through a ``DataLoader`` with 2 workers, each worker's
  ``RssAnon``/``RssFile``/``RssShmem`` (``/proc/PID/status``) and USS (``smaps_rollup``) sampled ~20 times:
  growth of anonymous memory is a leak, growth of file pages is the store's mapped pages;
- ``resume`` (at ``--kill-at``): the run is SIGKILLed once ``--kill-fraction`` of its shards are on
  disk, rerun to completion, verified; the time lost is both runs' wall time minus the records
  over the resumed run's steady rate.

Every measurement carries ``os.getloadavg()``: the project's machine has 2 cores shared with other
jobs. Stores and data go under ``--work`` (hundreds of MB at 1.28 M); a configuration whose store
is complete reuses it and its recorded reinforce figures.

Run (about 1.5 h on 2 busy cores for the full set; estimate from the 10 k row first)::

    python -m benchmarks.scale --sizes 10000,100000,1280000 --augs 10 --extra 128000x100 \\
        --work /work/scale-work --json benchmarks/results/scale.json --plot docs/img/scale.png
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from benchmarks._common import environment, record
from benchmarks.random_read import summarize, time_calls
from benchmarks.reinforce_throughput import augmented_batches, raw_throughput
from benchmarks.store_size import TemplateTeacher
from drkit.data import load_dataset
from drkit.errors import DrkitError
from drkit.reinforcement.engine import reinforce
from drkit.reinforcement.store import Store
from drkit.reinforcement.teachers import TeacherEnsemble
from drkit.training.reinforced_dataset import ReinforcedDataset

ROOT = Path(__file__).resolve().parents[1]
IMAGE_SHAPE = (3, 8, 8)
TAU = 3.0  # temperature of the template teacher: a confident top-1, a tail that moves with the crop
TEACHER_SPEC = "python:benchmarks.scale:teacher"
SLOW_TEACHER_SPEC = "python:benchmarks.scale:slow_teacher"
GOALS = {"open_s": 0.5, "verify_vs_sha256sum": 0.8, "read_warm_median_us": 5.0}
CHUNK = 100_000  # images generated at a time


# --------------------------------------------------------------------------- data and teacher


def class_templates(num_classes: int, seed: int = 0) -> np.ndarray:
    """One random 3x8x8 pattern per class, float32 in [0, 1]."""
    return np.random.default_rng([seed, 0]).uniform(0, 1, (num_classes, *IMAGE_SHAPE)).astype(np.float32)


def make_data(path: Path, num_samples: int, num_classes: int, seed: int = 0) -> Path:
    """Write (once) ``num_samples`` uint8 images ``template[i % C] + N(0, 0.1)`` and their labels
    as an uncompressed ``.npz`` (``x``, ``y``), generated in chunks so memory stays bounded."""
    if path.is_file():
        return path
    templates = class_templates(num_classes, seed)
    labels = np.arange(num_samples, dtype=np.int64) % num_classes
    images = np.empty((num_samples, *IMAGE_SHAPE), dtype=np.uint8)
    for c, a in enumerate(range(0, num_samples, CHUNK)):
        b = min(a + CHUNK, num_samples)
        noise = np.random.default_rng([seed, 1, c]).normal(0, 0.1, (b - a, *IMAGE_SHAPE)).astype(np.float32)
        images[a:b] = np.round(np.clip(templates[labels[a:b]] + noise, 0, 1) * 255).astype(np.uint8)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, x=images, y=labels)
    tmp.replace(path)
    return path


def teacher(num_classes: int, in_chans: int) -> nn.Module:
    """The ``python:benchmarks.scale:teacher`` spec: the nearest-template classifier of the data."""
    if in_chans != IMAGE_SHAPE[0]:
        raise ValueError(f"the scale teacher takes {IMAGE_SHAPE[0]}-channel images, not {in_chans}")
    return TemplateTeacher(torch.from_numpy(class_templates(num_classes)), tau=TAU)


class _Sleepy(nn.Module):
    def __init__(self, model: nn.Module, seconds: float) -> None:
        super().__init__()
        self.model, self.seconds = model, seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        return self.model(x)


def slow_teacher(num_classes: int, in_chans: int) -> nn.Module:
    """``teacher`` sleeping 50 ms per forward: a tiny run lasts long enough to be killed (tests)."""
    return _Sleepy(teacher(num_classes, in_chans), 0.05)


# --------------------------------------------------------------------------- helpers


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def child_cpu_seconds() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def subprocess_env(threads: int) -> dict[str, str]:
    """This environment, the repository root importable (the teacher spec), ``threads`` torch threads."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(ROOT)) if p)
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from drkit.cli.main import main; sys.exit(main())", *args]


def store_files(store: Path) -> list[Path]:
    """The ``.npy`` files of a store (shards, and key tables where it has them)."""
    return sorted(store.glob("*.npy"))


def has_keys(store: Store) -> bool:
    has = getattr(store, "has_sample_keys", False)
    return bool(has() if callable(has) else has)


# --------------------------------------------------------------------------- reinforce (+ resume)


def reinforce_cmd(data: Path, store: Path, augs: int, args: argparse.Namespace) -> list[str]:
    return cli("-q", "reinforce", f"npz:{data}", "--teacher", SLOW_TEACHER_SPEC if args.slow_teacher else TEACHER_SPEC,
               "--out", str(store), "--policy", args.policy, "--num-augs", str(augs), "--topk", str(args.topk),
               "--shard-size", str(args.shard_size), "--teacher-batch", str(args.teacher_batch),
               "--num-workers", str(args.num_workers), "--device", "cpu", "--json")


def run_to_end(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    t0, c0, l0 = time.perf_counter(), child_cpu_seconds(), load()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[3:])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout)
    return {"wall_s": time.perf_counter() - t0, "cpu_s": child_cpu_seconds() - c0,
            "run_stats": out["run_stats"], "loadavg_before": l0, "loadavg_after": load()}


def run_killed(cmd: list[str], env: dict[str, str], store: Path, total_shards: int, fraction: float) -> dict[str, Any]:
    """Start ``cmd``, SIGKILL it once ``fraction`` of ``total_shards`` are on disk."""
    want = max(1, int(fraction * total_shards))
    t0, l0 = time.perf_counter(), load()
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done, delay = 0, None
    while proc.poll() is None:
        done = sum(1 for p in store.glob("shard-*.npy")) if store.is_dir() else 0
        if done >= want and delay is None:
            # kill at a random moment of the next shard, not right after one landed (no work lost then)
            landed = sorted(p.stat().st_mtime for p in store.glob("shard-*.npy"))
            per_shard = (landed[-1] - landed[0]) / (len(landed) - 1) if len(landed) > 1 else 0.0
            delay = random.uniform(0, per_shard)
            kill_at = time.perf_counter() + delay
        if delay is not None and time.perf_counter() >= kill_at:
            break
        time.sleep(0.02)
    if proc.poll() is not None:
        raise RuntimeError(f"the run ended (rc {proc.returncode}) before {want} shards were written; "
                           "use a larger size or --slow-teacher")
    newest = max(p.stat().st_mtime for p in store.glob("shard-*.npy"))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    wall = time.perf_counter() - t0
    shards = sum(1 for p in store.glob("shard-*.npy"))
    return {"wall_s": wall, "shards_on_disk": shards, "kill_after_shards": want, "kill_delay_s": delay,
            "seconds_since_last_shard": time.time() - newest, "loadavg_before": l0, "loadavg_after": load()}


def resume_cost(resume: dict[str, Any], records: int, shard_records: int) -> dict[str, float]:
    """What the kill cost: the rerun's start (its wall time outside the compute loop: data, fingerprint,
    teacher, manifest) plus the work of the partial shard the kill discarded (time since the last shard
    landed). Not "both runs minus one at the resumed rate": the load of a shared machine changes between
    the two runs by more than the loss."""
    killed, resumed = resume["killed"], resume["resumed"]
    stats = resumed["run_stats"]
    if not stats["records_computed"]:
        raise RuntimeError("the killed run had written every shard: nothing was resumed; kill earlier "
                           "(--kill-fraction) or use a larger size")
    restart = resumed["wall_s"] - stats["seconds"]
    lost = restart + killed["seconds_since_last_shard"]
    full = records / stats["records_per_s"]
    return {"restart_s": restart, "discarded_work_s": killed["seconds_since_last_shard"],
            "shard_s_at_resumed_rate": shard_records / stats["records_per_s"], "lost_s": lost,
            "lost_fraction_of_run": lost / full}


def reinforce_config(data: Path, store: Path, n: int, augs: int, kill: bool, args: argparse.Namespace) -> dict[str, Any]:
    """Make the store (reusing a complete one and its recorded figures) and time it."""
    cached = store.parent / "reinforce.json"
    if cached.is_file() and (store / "manifest.json").is_file():
        out = {**json.loads(cached.read_text()), "reused": True}
        if "resume" in out:  # derived figures from the recorded raw ones
            out["resume"].update(resume_cost(out["resume"], n * augs, args.shard_size * augs))
        return out
    if store.exists():
        shutil.rmtree(store)  # an unfinished earlier attempt: measure from scratch
    env, cmd = subprocess_env(args.threads), reinforce_cmd(data, store, augs, args)
    total_shards = -(-n // args.shard_size)
    result: dict[str, Any] = {"records": n * augs, "shards": total_shards}
    if kill:
        killed = run_killed(cmd, env, store, total_shards, args.kill_fraction)
        resumed = run_to_end(cmd, env)
        stats = resumed["run_stats"]
        t0 = time.perf_counter()
        try:  # what `drkit verify STORE` checks; a failure is a finding, recorded
            verified, error = Store.open(store).verify(), None
        except DrkitError as e:
            verified, error = {"records": -1}, f"{type(e).__name__}: {e}"
        verify_s = time.perf_counter() - t0
        result["resume"] = {
            "killed": killed, "resumed": resumed,
            "records_recomputed_by_resume": stats["records_computed"],
            "records_kept_from_killed_run": n * augs - stats["records_computed"],
            "verify_ok": verified["records"] == n * augs, "verify_error": error, "verify_s": verify_s,
        }
        result["resume"].update(resume_cost(result["resume"], n * augs, args.shard_size * augs))
        main_run = resumed
    else:
        main_run = run_to_end(cmd, env)
    stats = main_run["run_stats"]
    result.update(records_per_s=stats["records_per_s"], compute_s=stats["seconds"], wall_s=main_run["wall_s"],
                  us_per_record=1e6 / stats["records_per_s"],
                  cpu_us_per_record_with_setup=1e6 * main_run["cpu_s"] / stats["records_computed"],
                  records_timed=stats["records_computed"], loadavg_before=main_run["loadavg_before"],
                  loadavg_after=main_run["loadavg_after"])
    cached.write_text(json.dumps(result, indent=2) + "\n")
    return result


def teacher_cost(data: Path, augs: int, args: argparse.Namespace) -> dict[str, Any]:
    """The teacher ensemble alone (forward + softmax) on views made as reinforcement makes them."""
    dataset = load_dataset(f"npz:{data}")
    ensemble = TeacherEnsemble([teacher(dataset.num_classes, dataset.image_shape[0])])
    batches, _ = augmented_batches(dataset, args.policy, augs, args.teacher_batch, args.teacher_batches)
    raw = raw_throughput(ensemble, batches, torch.device("cpu"), repeats=3)
    return {"records_per_s": raw["records_per_s"], "us_per_record": 1e6 / raw["records_per_s"],
            "records_per_pass": raw["records_per_pass"], "loadavg": load()}


# --------------------------------------------------------------------------- store-side figures

_OPEN_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
from drkit.reinforcement.engine import reinforce
from drkit.reinforcement.store import Store
t1 = time.perf_counter()
store = Store.open(sys.argv[1])
t2 = time.perf_counter()
out = {"import_s": t1 - t0, "open_s": t2 - t1}
has = getattr(store, "has_sample_keys", False)
if callable(has):
    has = has()
out["has_sample_keys"] = bool(has)
if has:
    import numpy as np
    t3 = time.perf_counter()
    keys = store.sample_keys()
    t4 = time.perf_counter()
    rows = store.rows_for(keys)
    t5 = time.perf_counter()
    again = store.rows_for(keys)
    t6 = time.perf_counter()
    out.update(keys=len(keys), keys_read_s=t4 - t3, rows_for_first_s=t5 - t4, rows_for_again_s=t6 - t5,
               rows_ok=bool((rows == np.arange(len(keys))).all() and (again == rows).all()))
print(json.dumps(out))
"""


def open_times(store: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``Store.open`` (and the key index where there is one) in fresh processes: median of repeats."""
    env = subprocess_env(args.threads)
    runs = []
    for _ in range(args.open_repeats):
        proc = subprocess.run([sys.executable, "-c", _OPEN_SCRIPT, str(store)], env=env, cwd=ROOT,
                              capture_output=True, text=True, check=True)
        runs.append(json.loads(proc.stdout))
    out: dict[str, Any] = {"repeats": runs, "loadavg": load()}
    for k in runs[0]:
        if k.endswith("_s"):
            out[k] = statistics.median(r[k] for r in runs)
    out["has_sample_keys"] = runs[0]["has_sample_keys"]
    if out["has_sample_keys"]:
        n = runs[0]["keys"]
        out["rows_for_us_per_key"] = 1e6 * out["rows_for_again_s"] / n
        out["index_build_s"] = out["keys_read_s"] + out["rows_for_first_s"] - out["rows_for_again_s"]
        out["rows_ok"] = all(r["rows_ok"] for r in runs)
    return out


def read_all(files: list[Path]) -> None:
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(1 << 22):
                pass


def verify_vs_sha256sum(store: Path, rounds: int) -> dict[str, Any]:
    files = store_files(store)
    nbytes = sum(f.stat().st_size for f in files)
    read_all(files)  # both sides from the page cache
    sha, ver = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        subprocess.run(["sha256sum", *map(str, files)], check=True, stdout=subprocess.DEVNULL)
        sha.append(time.perf_counter() - t0)
        s = Store.open(store)
        t0 = time.perf_counter()
        s.verify()
        ver.append(time.perf_counter() - t0)
        del s
    mb = nbytes / 1e6
    v, h = statistics.median(ver), statistics.median(sha)
    return {"bytes": nbytes, "files": len(files), "verify_s": ver, "sha256sum_s": sha,
            "verify_mb_s": mb / v, "sha256sum_mb_s": mb / h, "ratio": h / v, "loadavg": load()}


def random_pairs(n: int, augs: int, calls: int, seed: int) -> tuple[list[int], list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, calls).tolist(), rng.integers(0, augs, calls).tolist()


def read_warm(store: Path, calls: int) -> dict[str, Any]:
    s = Store.open(store)
    for k in range(len(s.shards)):  # every shard mapped, checksummed (so in the page cache)
        s._shard(k)
    idx, aug = random_pairs(s.num_samples, s.num_augs, calls, seed=1)
    rec = s.record
    out = summarize("store.record(i, j), warm", time_calls(lambda t: rec(idx[t], aug[t]), calls))
    return {**out, "loadavg": load()}


def drop_page_cache(files: list[Path]) -> str:
    """Drop ``files`` from the page cache: the whole cache when this process may, else per file."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
        return "/proc/sys/vm/drop_caches"
    except OSError:
        for p in files:
            fd = os.open(p, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
        return "posix_fadvise(POSIX_FADV_DONTNEED) per file"


def read_cold(store: Path, calls: int) -> dict[str, Any]:
    """Random reads right after the page cache was dropped, from a store opened without checksums
    (a checksum would read each shard into the cache); each call on its own, no warm-up."""
    gc.collect()  # no memory map of the warm store left: mapped pages are not dropped
    how = drop_page_cache(store_files(store))
    s = Store.open(store, verify=False)
    idx, aug = random_pairs(s.num_samples, s.num_augs, calls, seed=2)
    rec = s.record
    ns = time_calls(lambda t: rec(idx[t], aug[t]), calls, warmup=0)
    out = summarize("store.record(i, j), cold", ns)
    return {**out, "dropped_with": how, "over_20us": float((ns > 20_000).mean()), "loadavg": load()}


def dataset_items(data: Path, store: Path, calls: int) -> dict[str, Any]:
    dataset = load_dataset(f"npz:{data}")
    t0 = time.perf_counter()
    rds = ReinforcedDataset(dataset, store, sparse=True)
    build = time.perf_counter() - t0
    for k in range(len(rds.store.shards)):
        rds.store._shard(k)
    rng = np.random.default_rng(3)
    idx = rng.integers(0, len(rds), calls).tolist()
    out = summarize("ReinforcedDataset(sparse=True)[i]", time_calls(lambda t: rds[idx[t]], calls, warmup=200))
    return {**out, "construct_s": build, "loadavg": load()}


def _status(pid: int) -> dict[str, int]:
    """``VmRSS``, ``RssAnon``, ``RssFile``, ``RssShmem`` of ``pid`` in bytes (``/proc/PID/status``), and its
    USS (private pages, ``/proc/PID/smaps_rollup``)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(value.split()[0]) * 1024
    with open(f"/proc/{pid}/smaps_rollup") as f:  # USS: the pages only this process maps (psutil's definition)
        fields = {k: v for k, _, v in (line.partition(":") for line in f)}
    out["USS"] = sum(int(fields[k].split()[0]) * 1024 for k in ("Private_Clean", "Private_Dirty", "Private_Hugetlb")
                     if k in fields)
    return out


def _private_by_mapping(pid: int, store: Path) -> dict[str, int]:
    """A process's private pages (``Private_Clean`` + ``Private_Dirty``, ``/proc/PID/smaps``) by what
    they map: the store's shard and key files, other files (libraries), the heap, other anonymous
    memory (large numpy arrays are anonymous mappings of their own). Where USS grows, this says
    whether the process allocated (``heap``/``anon`` with RssAnon growing) or pages it shared at fork
    became its own (``anon``/``heap`` growing in USS while RssAnon stays flat: copy-on-write, the
    parent or the child wrote to a page they shared)."""
    root = str(store.resolve())
    out = {"store": 0, "files": 0, "heap": 0, "anon": 0}
    kind = "anon"
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split(None, 5)
            if "-" in head[0] and len(head) >= 5 and ":" not in head[0]:  # a mapping's header line
                name = head[5].strip() if len(head) > 5 else ""
                kind = ("store" if name.startswith(root) else "heap" if name == "[heap]"
                        else "files" if name.startswith("/") else "anon")
            elif head[0] in ("Private_Clean:", "Private_Dirty:"):
                out[kind] += int(head[1]) * 1024
    return out


def worker_rss(data: Path, store: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One shuffled epoch with 2 workers, their memory sampled ~``args.rss_samples`` times."""
    dataset = load_dataset(f"npz:{data}")
    rds = ReinforcedDataset(dataset, store, sparse=True)
    loader = DataLoader(rds, batch_size=args.rss_batch, shuffle=True, num_workers=2,
                        generator=torch.Generator().manual_seed(0))
    every = max(1, len(loader) // args.rss_samples)
    samples: list[dict[str, Any]] = []
    it = iter(loader)
    pids = [w.pid for w in it._workers]  # type: ignore[attr-defined]
    t0, l0 = time.perf_counter(), load()
    for b, _batch in enumerate(it):
        if b % every == 0 or b == len(loader) - 1:
            samples.append({"batch": b, "items": min((b + 1) * args.rss_batch, len(rds)),
                            "workers": [_status(p) for p in pids],
                            "private": [_private_by_mapping(p, store) for p in pids],
                            "parent": _status(os.getpid())})
    seconds = time.perf_counter() - t0
    del it
    first, last = samples[0]["workers"], samples[-1]["workers"]

    def growth(key: str) -> list[int]:
        return [b[key] - a[key] for a, b in zip(first, last, strict=True)]

    def peak(key: str) -> list[int]:
        return [max(s["workers"][w][key] for s in samples) - first[w][key] for w in range(len(pids))]

    private = {k: [b[k] - a[k] for a, b in zip(samples[0]["private"], samples[-1]["private"], strict=True)]
               for k in samples[0]["private"][0]}
    parent = {k: samples[-1]["parent"][k] - samples[0]["parent"][k] for k in ("RssAnon", "USS")}
    return {"workers": len(pids), "batches": len(loader), "batch_size": args.rss_batch, "epoch_s": seconds,
            "private_growth_by_mapping": private, "parent_growth": parent,
            "items_per_s": len(rds) / seconds, "store_bytes": sum(f.stat().st_size for f in store_files(store)),
            "start": first, "end": last, "growth": {k: growth(k) for k in ("RssAnon", "RssFile", "RssShmem", "USS")},
            "peak_growth": {k: peak(k) for k in ("RssAnon", "RssFile", "USS")}, "samples": samples,
            "loadavg_before": l0, "loadavg_after": load()}


# --------------------------------------------------------------------------- one configuration


def measure_config(n: int, augs: int, kill: bool, args: argparse.Namespace) -> dict[str, Any]:
    root = args.work / f"n{n}_a{augs}"
    root.mkdir(parents=True, exist_ok=True)
    log(f"N={n} augs={augs}: data")
    data = make_data(args.work / f"data-n{n}-c{args.classes}.npz", n, args.classes)
    store = root / "store"
    log(f"N={n} augs={augs}: reinforce{' (killed and resumed)' if kill else ''}")
    rein = reinforce_config(data, store, n, augs, kill, args)
    log(f"  {rein['records_per_s']:.0f} records/s")
    tc = teacher_cost(data, augs, args)
    rein["teacher"] = tc
    rein["overhead_us_per_record"] = rein["us_per_record"] - tc["us_per_record"]
    rein["overhead_records_per_s"] = 1e6 / rein["overhead_us_per_record"]
    s = Store.open(store)
    summary = s.summary()
    keyed = has_keys(s)
    del s
    log(f"N={n} augs={augs}: open, verify, reads")
    out: dict[str, Any] = {
        "samples": n, "augs": augs, "records": n * augs,
        "store": {k: summary[k] for k in ("shards", "bytes", "record_bytes", "bytes_per_record", "schema_version")}
        | {"sample_keys": keyed},
        "reinforce": rein,
        "open": open_times(store, args),
        "verify": verify_vs_sha256sum(store, args.verify_rounds),
        "read_warm": read_warm(store, args.calls),
        "read_cold": read_cold(store, args.cold_calls),
        "dataset_item": dataset_items(data, store, args.items),
    }
    log(f"N={n} augs={augs}: worker RSS over an epoch")
    out["worker_rss"] = worker_rss(data, store, args)
    return out


# --------------------------------------------------------------------------- report


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def goals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    big = max(rows, key=lambda r: (r["samples"], -r["augs"]))
    def mb(x: int) -> float:
        return x / 2**20
    anon = max(max(r["worker_rss"]["peak_growth"]["RssAnon"]) for r in rows)
    return {
        "open_s_at_largest": {"value": big["open"]["open_s"], "goal": GOALS["open_s"],
                              "met": big["open"]["open_s"] <= GOALS["open_s"]},
        "verify_vs_sha256sum_min": {"value": min(r["verify"]["ratio"] for r in rows),
                                    "goal": GOALS["verify_vs_sha256sum"],
                                    "met": min(r["verify"]["ratio"] for r in rows) >= GOALS["verify_vs_sha256sum"]},
        "read_warm_median_us_max": {"value": max(r["read_warm"]["median_us"] for r in rows),
                                    "goal": GOALS["read_warm_median_us"],
                                    "met": max(r["read_warm"]["median_us"] for r in rows) <= GOALS["read_warm_median_us"]},
        "worker_rss_anon_peak_growth_mib_max": {"value": mb(anon), "goal": "flat (no growth beyond file pages read)"},
        "per_item_cost_largest_over_smallest_n": flatness(rows),
    }


PER_ITEM = {  # per-record / per-item costs that should not depend on N
    "reinforce_overhead_us_per_record": lambda r: r["reinforce"]["overhead_us_per_record"],
    "reinforce_cpu_us_per_record": lambda r: r["reinforce"]["cpu_us_per_record_with_setup"],
    "read_warm_median_us": lambda r: r["read_warm"]["median_us"],
    "dataset_item_median_us": lambda r: r["dataset_item"]["median_us"],
    "verify_us_per_mb": lambda r: 1e6 / r["verify"]["verify_mb_s"],
    "open_us_per_shard": lambda r: 1e6 * r["open"]["open_s"] / r["store"]["shards"],
}


def flatness(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Each per-item cost at the largest N over the same at the smallest N (same augmentations)."""
    augs = max({r["augs"] for r in rows}, key=lambda a: sum(r["augs"] == a for r in rows))
    mine = sorted((r for r in rows if r["augs"] == augs), key=lambda r: r["samples"])
    return {k: fn(mine[-1]) / fn(mine[0]) for k, fn in PER_ITEM.items()}


def markdown(rows: list[dict[str, Any]]) -> str:
    rows = sorted(rows, key=lambda r: (r["samples"], r["augs"]))
    head = ("| N × augs | records | store MB | shards | reinforce rec/s | teacher µs/rec | overhead µs/rec "
            "| open s (import s) | verify MB/s / sha256sum MB/s | warm read µs (p99) | cold read µs (p99) "
            "| item µs (p99) | worker RssAnon / RssFile / USS growth MiB | load |")
    out = [head, "|" + "---|" * 14]
    for r in rows:
        rein, op, ve, w = r["reinforce"], r["open"], r["verify"], r["worker_rss"]
        g = w["growth"]
        out.append(
            f"| {r['samples']:,} × {r['augs']} | {r['records']:,} | {r['store']['bytes'] / 1e6:.0f} "
            f"| {r['store']['shards']} | {rein['records_per_s']:.0f} | {rein['teacher']['us_per_record']:.1f} "
            f"| {rein['overhead_us_per_record']:.0f} | {op['open_s']:.3f} ({op['import_s']:.2f}) "
            f"| {ve['verify_mb_s']:.0f} / {ve['sha256sum_mb_s']:.0f} ({ve['ratio']:.2f}×) "
            f"| {r['read_warm']['median_us']:.2f} ({r['read_warm']['p99_us']:.1f}) "
            f"| {r['read_cold']['median_us']:.1f} ({r['read_cold']['p99_us']:.0f}) "
            f"| {r['dataset_item']['median_us']:.0f} ({r['dataset_item']['p99_us']:.0f}) "
            f"| {max(g['RssAnon']) / 2**20:.1f} / {max(g['RssFile']) / 2**20:.1f} / {max(g['USS']) / 2**20:.1f} "
            f"| {rein['loadavg_before'][0]:.1f}–{w['loadavg_after'][0]:.1f} |")
    keyed = [r for r in rows if r["open"]["has_sample_keys"]]
    if keyed:
        out += ["", "| N × augs | keys read s | index build s | rows_for µs/key (all N keys) |", "|---|---|---|---|"]
        for r in keyed:
            op = r["open"]
            out.append(f"| {r['samples']:,} × {r['augs']} | {op['keys_read_s']:.3f} | {op['index_build_s']:.3f} "
                       f"| {op['rows_for_us_per_key']:.2f} |")
    resumes = [r for r in rows if "resume" in r["reinforce"]]
    for r in resumes:
        re_ = r["reinforce"]["resume"]
        out += ["", f"resume at {r['samples']:,} × {r['augs']}: killed after {re_['killed']['wall_s']:.0f} s with "
                f"{re_['killed']['shards_on_disk']} of {r['store']['shards']} shards on disk; the rerun computed "
                f"{re_['records_recomputed_by_resume']:,} records in {re_['resumed']['wall_s']:.0f} s; time lost "
                f"{re_['lost_s']:.1f} s ({100 * re_['lost_fraction_of_run']:.2f} % of a run: restart "
                f"{re_['restart_s']:.1f} s + discarded work {re_['discarded_work_s']:.1f} s); verify "
                f"{'passed' if re_['verify_ok'] else 'FAILED'}"]
    return "\n".join(out)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib  # a plotting extra of this script only

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: (r["samples"], r["augs"]))
    n = [r["samples"] for r in rows]
    panels = [
        ("reinforce overhead µs/record\n(teacher removed)", lambda r: r["reinforce"]["overhead_us_per_record"], None),
        ("Store.open s (cold process)", lambda r: r["open"]["open_s"], GOALS["open_s"]),
        ("verify / sha256sum throughput", lambda r: r["verify"]["ratio"], GOALS["verify_vs_sha256sum"]),
        ("random record read µs (median)", lambda r: r["read_warm"]["median_us"], GOALS["read_warm_median_us"]),
        ("ReinforcedDataset(sparse) item µs (median)", lambda r: r["dataset_item"]["median_us"], None),
        ("worker memory growth over an epoch MiB", lambda r: max(r["worker_rss"]["growth"]["RssAnon"]) / 2**20, None),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, (title, fn, goal) in zip(axes.flat, panels, strict=True):
        ax.plot(n, [fn(r) for r in rows], "o-", label="RssAnon" if "growth" in title else "warm" if "read" in title
                else None)
        for r in rows:  # which configuration each point is
            ax.annotate(f"×{r['augs']}", (r["samples"], fn(r)), fontsize=7, textcoords="offset points", xytext=(3, 3))
        if "read" in title:
            ax.plot(n, [r["read_cold"]["median_us"] for r in rows], "s--", label="cold (page cache dropped)")
            ax.set_yscale("log")
        if "growth" in title:
            ax.plot(n, [max(r["worker_rss"]["growth"]["RssFile"]) / 2**20 for r in rows], "s--", label="RssFile")
            ax.plot(n, [r["worker_rss"]["store_bytes"] / 2**20 for r in rows], ":", label="store size")
            ax.set_yscale("symlog")
        if goal is not None:
            ax.axhline(goal, color="gray", ls=":", label="goal")
        ax.set_xscale("log")
        ax.set_xlabel("samples N (×A: augmentations per sample)")
        ax.set_title(title, fontsize=10)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle("drkit store costs against N (2 shared CPU cores; load average in benchmarks/results/scale.json)",
                 fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- main


def parse_extra(text: str) -> list[tuple[int, int]]:
    out = []
    for item in filter(None, text.split(",")):
        n, sep, a = item.lower().partition("x")
        if not sep or not n.isdigit() or not a.isdigit():
            raise SystemExit(f"--extra {item!r}: expected SAMPLESxAUGS, e.g. 128000x100")
        out.append((int(n), int(a)))
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--sizes", default="10000,100000,1280000", help="comma-separated sample counts")
    p.add_argument("--augs", type=int, default=10, help="augmentations per sample at --sizes")
    p.add_argument("--extra", default="", help="more configurations SAMPLESxAUGS, comma-separated (128000x100)")
    p.add_argument("--kill-at", type=int, default=None,
                   help="the size whose run is SIGKILLed and resumed (its first configuration; default: the largest of "
                        "--sizes; 0: none)")
    p.add_argument("--kill-fraction", type=float, default=0.4, help="of the shards on disk when the run is killed")
    p.add_argument("--work", type=Path, required=True, help="data and stores go here (hundreds of MB)")
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--policy", default="cropflip")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--shard-size", type=int, default=1024)
    p.add_argument("--teacher-batch", type=int, default=256)
    p.add_argument("--teacher-batches", type=int, default=40, help="batches of views timed for the teacher's cost")
    p.add_argument("--num-workers", type=int, default=-1, help="DataLoader workers of drkit reinforce")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (OMP_NUM_THREADS) of every process: 1 on a shared 2-core machine, where "
                        "2 intra-op threads next to a DataLoader worker oversubscribe the cores")
    p.add_argument("--threads-probe", type=int, default=0, metavar="N",
                   help="instead: reinforce N samples with 2 vs. 1 torch threads, num_workers 0 and 1, interleaved")
    p.add_argument("--slow-teacher", action="store_true", help="the teacher sleeps 50 ms per forward (tests)")
    p.add_argument("--open-repeats", type=int, default=3)
    p.add_argument("--verify-rounds", type=int, default=2)
    p.add_argument("--calls", type=int, default=100_000, help="warm random reads timed")
    p.add_argument("--cold-calls", type=int, default=2000, help="random reads timed after dropping the page cache")
    p.add_argument("--items", type=int, default=5000, help="ReinforcedDataset items timed")
    p.add_argument("--rss-batch", type=int, default=256, help="batch size of the worker-RSS epoch")
    p.add_argument("--rss-samples", type=int, default=20, help="memory samples per epoch")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--reuse", action="store_true",
                   help="keep the configurations --json already holds (same settings) instead of measuring them again")
    p.add_argument("--plot", type=Path, default=None)
    return p.parse_args(argv)


_SAME = ("classes", "policy", "topk", "shard_size", "teacher_batch", "threads")  # settings a kept row must share


def reusable_rows(args: argparse.Namespace) -> dict[tuple[int, int], dict[str, Any]]:
    """With ``--reuse``: the configurations the ``--json`` file already holds, measured with the same
    settings (each row keeps its own load averages), so a long benchmark can be completed in sittings."""
    if not args.reuse or args.json is None or not args.json.is_file():
        return {}
    old = json.loads(args.json.read_text())
    if any(old["settings"].get(k) != getattr(args, k) for k in _SAME):
        log(f"{args.json} was measured with other settings: nothing reused")
        return {}
    rows = {(r["samples"], r["augs"]): r for r in old["results"]}
    for r in rows.values():  # the derived resume figures, recomputed from the recorded raw ones
        if "resume" in r.get("reinforce", {}):
            r["reinforce"]["resume"].update(resume_cost(r["reinforce"]["resume"], r["records"],
                                                        args.shard_size * r["augs"]))
    return rows


def threads_probe(args: argparse.Namespace) -> list[dict[str, Any]]:
    """``drkit.reinforce`` in this process with 2 and 1 torch threads, ``num_workers`` 0 and 1, rounds
    interleaved (``--threads-probe N`` samples x ``--augs``): what oversubscribing shared cores costs."""
    data = make_data(args.work / f"data-n{args.threads_probe}-c{args.classes}.npz", args.threads_probe, args.classes)
    dataset = load_dataset(f"npz:{data}")
    rows = []
    for rnd in range(2):
        for threads in (2, 1):
            torch.set_num_threads(threads)
            for workers in (0, 1):
                out = args.work / f"threads-probe-{threads}-{workers}"
                shutil.rmtree(out, ignore_errors=True)
                before = load()
                store = reinforce(dataset, teacher(args.classes, IMAGE_SHAPE[0]), out, policy=args.policy,
                                  num_augs=args.augs, topk=args.topk, shard_size=args.shard_size,
                                  teacher_batch=args.teacher_batch, num_workers=workers, device="cpu", progress=False)
                rows.append({"round": rnd, "threads": threads, "num_workers": workers,
                             "records_per_s": store.run_stats["records_per_s"], "loadavg_before": before})
                log(f"threads={threads} num_workers={workers}: {rows[-1]['records_per_s']:.0f} records/s")
                shutil.rmtree(out)
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads_probe:
        args.work.mkdir(parents=True, exist_ok=True)
        rows = threads_probe(args)
        record("scale_threads", vars(args), args.json, environment=environment(), results=rows)
        return
    torch.set_num_threads(args.threads)
    random.seed(0)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    configs = [(n, args.augs) for n in sizes] + parse_extra(args.extra)
    kill_at = max(sizes) if args.kill_at is None else args.kill_at
    args.work.mkdir(parents=True, exist_ok=True)
    load_before = load()
    rows = []
    kill_index = next((k for k, (n, _) in enumerate(configs) if n == kill_at), None)
    earlier = reusable_rows(args)
    for k, (n, a) in enumerate(configs):
        if (n, a) in earlier:
            log(f"N={n} augs={a}: measured earlier, kept from {args.json}")
            rows.append(earlier[n, a])
        else:
            rows.append(measure_config(n, a, kill=k == kill_index, args=args))
        partial = record("scale", vars(args), args.json, environment=environment(loadavg_1_5_15_before=load_before),
                         disk_free_bytes=shutil.disk_usage(args.work).free, results=rows)
    result = record("scale", vars(args), args.json, environment=environment(loadavg_1_5_15_before=load_before),
                    disk_free_bytes=shutil.disk_usage(args.work).free, goals=goals(rows), results=rows)
    del partial
    print(markdown(rows))
    print(json.dumps(result["goals"], indent=2))
    if args.plot is not None:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()

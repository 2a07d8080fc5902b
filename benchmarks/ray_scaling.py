"""Ray engine throughput with 1 and 2 workers, and the scaling ratio; the local engine for reference.

Every run reinforces the same data with the same teacher into a fresh store and must write the
same bytes (checked: ``identical``). Runs, in interleaved rounds:

- ``local (default)``: ``drkit.reinforce`` as a user runs it (torch's default threads, DataLoader
  workers = spare cores);
- ``local (1 thread)``: the local engine pinned like one Ray worker (1 torch thread, no
  DataLoader workers): what one worker does without Ray;
- ``ray N``: ``engine="ray"`` with N workers of 1 CPU each (``cpus_per_worker=1``: 1 torch
  thread, augmentation in the worker process), on a Ray instance started once
  (``ray.init(num_cpus=CPUS)``) before timing.

Where the time goes (``--breakdown``, on by default): each Ray run's ``run_stats["profile"]`` (per
worker: ``boot`` = process start and imports, ``fetch`` = dataset and teachers out of the object
store, ``load`` = teachers built and checked, then ``compute`` of which ``teacher``, and ``idle``;
on the driver: waiting, fetching results, writing shards), and the CPU-seconds every process used
during the run (sampled with psutil): the Ray workers, the driver, Ray's own daemons (raylet, GCS,
dashboard/agents, idle workers) and **everything else on the machine** — on a shared machine the
last column says how much of the 2 cores other people's jobs took.

The machine's own ceiling (``--ceiling``, on by default): ``plain N`` runs N plain processes (no
Ray, spawned and booted before the clock starts, then released together) that each compute every
N-th shard with the same :class:`~drkit.reinforcement.ShardComputer` a Ray worker uses (1 thread, no
DataLoader workers, nothing written). ``plain 2 / plain 1`` is the most any engine could scale this
compute on this machine (two vCPUs of a shared host are not two whole cores); Ray's steady scaling
divided by it is what Ray itself loses.

``records/s`` is what ``store.run_stats`` reports: all records over the whole call, so for Ray it
includes starting the workers (a new process each, importing torch and loading the teacher;
``start s`` is when the last one was ready). ``steady`` is the rate after that: the records
written once every worker was ready over the time they took. ``scaling`` is ray 2 / ray 1. With ``--gpus-per-worker G`` the Ray workers run the teacher
on CUDA (the local runs use ``--device``).

Data: the first ``--samples`` Fashion-MNIST training images (``/usr/share/datasets/fashion-mnist``;
sklearn digits if absent), policy ``randaugment``. Teacher: ``--members`` randomly initialised
``SmallCNN(1, 10, width=32)`` (the cost does not depend on the weights), shipped to the workers.

Run (about 6 minutes on 2 CPU cores)::

    python -m benchmarks.ray_scaling --json benchmarks/results/ray_scaling.json
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
from torch import nn

import drkit
from benchmarks._common import environment, load_data, record
from drkit.data import ImageDataset
from drkit.models import SmallCNN
from drkit.reinforcement.config import ReinforceConfig
from drkit.reinforcement.ray_engine import RayOptions


def make_members(count: int, dataset: ImageDataset) -> list[nn.Module]:
    torch.manual_seed(0)
    return [SmallCNN(dataset.image_shape[0], dataset.num_classes, width=32) for _ in range(count)]


def store_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.iterdir()):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


class CpuSampler:
    """CPU-seconds used by this process's descendants (sampled every 0.2 s, so processes that end
    during the run still count up to their last sample) and by the whole machine, over a run."""

    def __init__(self) -> None:
        self.me = psutil.Process()
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.names: dict[int, str] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        for p in [self.me, *self.me.children(recursive=True)]:
            try:
                t = p.cpu_times()
                cpu = t.user + t.system
                if p.pid not in self.names:
                    self.names[p.pid] = " ".join([p.name(), *p.cmdline()[:2]])[-120:]  # ray::..., raylet, gcs_server
                    # a process born during the run counts from 0, one that was there from its start value
                    self.first[p.pid] = cpu if self.started is None else 0.0
            except psutil.Error:
                continue
            self.last[p.pid] = cpu

    def _loop(self) -> None:
        while not self.stop.wait(0.2):
            self._sample()

    def __enter__(self) -> CpuSampler:
        self.started = None
        self.machine0 = psutil.cpu_times()
        self._sample()
        self.started = time.perf_counter()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self._sample()
        self.machine1 = psutil.cpu_times()

    def split(self, workers: set[int]) -> dict[str, float]:
        """CPU-seconds: Ray workers (``workers`` pids), the driver (this process), Ray's own processes
        (the other descendants), and every other process on the machine."""
        used = {pid: self.last[pid] - self.first[pid] for pid in self.last}
        busy = sum(getattr(self.machine1, f) - getattr(self.machine0, f)
                   for f in ("user", "nice", "system", "irq", "softirq", "steal") if hasattr(self.machine1, f))
        driver = used.pop(self.me.pid, 0.0)
        actors = sum(v for pid, v in used.items() if pid in workers)
        ray_own = sum(v for pid, v in used.items() if pid not in workers and "ray" in self.names[pid])
        loaders = sum(v for pid, v in used.items() if pid not in workers and "ray" not in self.names[pid])
        return {"ray_workers": actors, "driver": driver, "dataloader_workers": loaders, "ray_daemons": ray_own,
                "others_on_machine": max(0.0, busy - actors - driver - loaders - ray_own), "machine_busy": busy}


def one_run(name: str, dataset: ImageDataset, members: list[nn.Module], config: ReinforceConfig,
            workdir: Path, *, threads: int, ray_options: RayOptions | None) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix="store-", dir=workdir))
    default_threads = torch.get_num_threads()
    torch.set_num_threads(threads)  # the local engine's teacher threads (the Ray driver only probes)
    load = os.getloadavg()[0]
    try:
        with CpuSampler() as cpu:
            t0 = time.perf_counter()
            store = drkit.reinforce(dataset, members, out / "s", config, progress=False,
                                    engine="ray" if ray_options else "local", ray_options=ray_options)
            wall = time.perf_counter() - t0
    finally:
        torch.set_num_threads(default_threads)
    st = store.run_stats or {}
    start = float(st.get("workers_ready_s", 0.0))
    after = int(st.get("records_after_ready", st["records_computed"]))
    profile = st.get("profile")
    pids = {w["pid"] for w in profile["workers"]} if profile else set()
    return {"run": name, "records": st["records_computed"], "seconds": st["seconds"],
            "records_per_s": st["records_per_s"], "start_s": start,
            "steady_records_per_s": after / (st["seconds"] - start) if after else float("nan"),
            "wall_seconds_with_setup": wall, "loadavg_1_before": load, "cpu_s": cpu.split(pids),
            "shards_retried": st.get("shards_retried"), "shards_backed_up": st.get("shards_backed_up"),
            "profile": profile, "digest": store_digest(store.root)}


def _plain_worker(rank: int, n: int, samples: int, members: int, config: ReinforceConfig, barrier: Any,
                  results: Any) -> None:
    """One ``plain N`` process: set up like a Ray worker (1 thread), wait for the others, compute
    every N-th shard, report the wall-clock interval of the computation and the records made."""
    from drkit.reinforcement.compute import ShardComputer
    from drkit.reinforcement.plan import plan_run
    from drkit.reinforcement.store import shard_ranges

    torch.set_num_threads(1)
    dataset = load_data(samples)
    with tempfile.TemporaryDirectory(prefix="drkit-plain-") as tmp:  # plan_run writes nothing there
        plan = plan_run(dataset, make_members(members, dataset), Path(tmp) / "s", config, device=torch.device("cpu"))
    computer = ShardComputer(plan.dataset, plan.policy, plan.teacher, plan.dtype, config, torch.device("cpu"))
    mine = shard_ranges(len(dataset), config.shard_size)[rank::n]
    list(computer.run(mine[:1]))  # warm: the first forward's one-off costs are a worker's boot, not compute
    barrier.wait()
    t0, c0 = time.time(), time.process_time()
    records = sum(r.size for _, _, r, _ in computer.run(mine))
    results.put({"rank": rank, "t0": t0, "t1": time.time(), "cpu_s": time.process_time() - c0, "records": records})


def plain_run(n: int, args: argparse.Namespace, config: ReinforceConfig) -> dict[str, Any]:
    """``plain N``: N processes computing the shards between them, the clock from their common start."""
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_plain_worker, args=(r, n, args.samples, args.members, config, barrier, results))
             for r in range(n)]
    load = os.getloadavg()[0]
    for p in procs:
        p.start()
    rows = [results.get() for _ in procs]
    for p in procs:
        p.join()
    seconds = max(r["t1"] for r in rows) - min(r["t0"] for r in rows)
    records = sum(r["records"] for r in rows)
    return {"run": f"plain {n}", "records": records, "seconds": seconds, "records_per_s": records / seconds,
            "loadavg_1_before": load, "processes": sorted(rows, key=lambda r: r["rank"])}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--samples", type=int, default=2048, help="first N training images")
    p.add_argument("--num-augs", type=int, default=8, help="stored augmentations per sample")
    p.add_argument("--members", type=int, default=3, help="teacher ensemble members (SmallCNN-32)")
    p.add_argument("--shard-size", type=int, default=128, help="samples per shard (the unit of work)")
    p.add_argument("--teacher-batch", type=int, default=256, help="records per teacher forward")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds of all runs")
    p.add_argument("--cpus", type=int, default=os.cpu_count() or 2, help="CPUs of the local Ray instance")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray worker counts to run")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="> 0: Ray workers run the teacher on CUDA")
    p.add_argument("--device", default="cpu", help="teacher device of the local runs")
    p.add_argument("--no-local", action="store_true", help="skip the local-engine reference runs")
    p.add_argument("--idle-seconds", type=float, default=10.0, help="measure an idle Ray instance's CPU this long")
    p.add_argument("--no-ceiling", action="store_true", help="skip the plain-process ceiling runs")
    p.add_argument("--json", type=Path, default=None, help="write the results as JSON to this path")
    return p.parse_args(argv)


def markdown(summary: list[dict[str, Any]], scaling: dict[str, float] | None) -> str:
    out = ["| run | records | records/s (median / best) | start s | steady records/s | identical |",
           "|---|---|---|---|---|---|"]
    for s in summary:
        out.append(f"| {s['run']} | {s['records']} | {s['median_records_per_s']:.0f} / {s['best_records_per_s']:.0f} "
                   f"| {s['median_start_s']:.1f} | {s['median_steady_records_per_s']:.0f} "
                   f"| {'yes' if s['identical'] else 'NO'} |")
    if scaling:
        out.append(f"\nscaling ray {scaling['to']} / ray {scaling['from']}: {scaling['records_per_s']:.2f}x "
                   f"(records/s), {scaling['steady']:.2f}x (steady)")
        if "ceiling" in scaling:
            out.append(f"machine ceiling plain {scaling['to']} / plain {scaling['from']}: {scaling['ceiling']:.2f}x; "
                       f"Ray's steady scaling is {scaling['steady_of_ceiling']:.0%} of it")
    return "\n".join(out)


def breakdown(runs: list[dict[str, Any]]) -> str:
    """One row per run: where its seconds went (Ray runs: from ``run_stats["profile"]``, worker
    columns the mean over workers) and the CPU-seconds each kind of process used meanwhile."""
    out = ["| run | round | load | s | boot s | fetch s | load s | ready s | compute s (teacher) | idle s "
           "| driver write / get s | CPU s: Ray workers / driver / its DataLoader workers / Ray daemons / others |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        c = r["cpu_s"]
        cpu = (f"{c['ray_workers']:.1f} / {c['driver']:.1f} / {c['dataloader_workers']:.1f} / "
               f"{c['ray_daemons']:.1f} / {c['others_on_machine']:.1f}")
        prof = r.get("profile")
        if not prof:
            out.append(f"| {r['run']} | {r['round']} | {r['loadavg_1_before']:.1f} | {r['seconds']:.1f} "
                       f"| – | – | – | – | – | – | – | {cpu} |")
            continue
        ws = prof["workers"]

        def mean(key: str, ws: list[dict[str, Any]] = ws) -> float:
            return statistics.fmean(w.get(key, float("nan")) for w in ws)

        d = prof["driver"]
        out.append(f"| {r['run']} | {r['round']} | {r['loadavg_1_before']:.1f} | {r['seconds']:.1f} "
                   f"| {mean('boot_s'):.2f} | {mean('fetch_s'):.3f} | {mean('load_s'):.2f} | {mean('ready_s'):.2f} "
                   f"| {mean('compute_s'):.1f} ({mean('teacher_s'):.1f}) | {mean('idle_s'):.2f} "
                   f"| {d['write_s']:.2f} / {d['get_s']:.2f} | {cpu} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    import ray

    args = parse_args(argv)
    dataset = load_data(args.samples)
    members = make_members(args.members, dataset)
    config = ReinforceConfig(policy="randaugment", num_augs=args.num_augs, shard_size=args.shard_size,
                             teacher_batch=args.teacher_batch, device=args.device)
    pinned = dataclasses.replace(config, num_workers=0)
    ray_config = dataclasses.replace(config, device=None)
    plans: list[tuple[str, ReinforceConfig, int, RayOptions | None]] = []
    if not args.no_local:
        plans += [("local (default)", config, torch.get_num_threads(), None),
                  ("local (1 thread)", pinned, 1, None)]
    plans += [(f"ray {w}", ray_config, 1, RayOptions(workers=w, cpus_per_worker=1,
                                                     gpus_per_worker=args.gpus_per_worker))
              for w in args.workers]

    ray.init(num_cpus=args.cpus, include_dashboard=False)
    time.sleep(5)  # let the just-started instance settle, then: what Ray costs doing nothing
    with CpuSampler() as idle:
        time.sleep(args.idle_seconds)
    ray_idle = {k: v / args.idle_seconds for k, v in idle.split(set()).items()}
    print(f"idle Ray instance, CPU-seconds per second: {ray_idle}", file=sys.stderr)
    load_before = os.getloadavg()
    runs: list[dict[str, Any]] = []
    plain: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="drkit-ray-scaling-") as tmp:
        small = dataset.subset(np.arange(min(256, len(dataset))))  # type: ignore[attr-defined]
        one_run("warm-up", small, members, pinned, Path(tmp), threads=1, ray_options=None)
        for rnd in range(args.rounds):
            for name, cfg, threads, opts in plans:
                r = one_run(name, dataset, members, cfg, Path(tmp), threads=threads, ray_options=opts)
                r["round"] = rnd
                runs.append(r)
                print(f"round {rnd} {name}: {r['records_per_s']:.0f} records/s, start {r['start_s']:.1f} s, "
                      f"steady {r['steady_records_per_s']:.0f}, load {r['loadavg_1_before']:.2f}, "
                      f"CPU s {', '.join(f'{k} {v:.1f}' for k, v in r['cpu_s'].items())}", file=sys.stderr)
            for n in [] if args.no_ceiling else args.workers:
                r = {**plain_run(n, args, pinned), "round": rnd}
                plain.append(r)
                print(f"round {rnd} plain {n}: {r['records_per_s']:.0f} records/s, per-process CPU s "
                      f"{[round(p['cpu_s'], 1) for p in r['processes']]}, load {r['loadavg_1_before']:.2f}",
                      file=sys.stderr)
    ray.shutdown()

    reference = runs[0]["digest"]
    summary = []
    for name, *_ in plans:
        mine = [r for r in runs if r["run"] == name]
        summary.append({
            "run": name, "records": mine[0]["records"], "rounds": len(mine),
            "median_records_per_s": statistics.median(r["records_per_s"] for r in mine),
            "best_records_per_s": max(r["records_per_s"] for r in mine),
            "median_start_s": statistics.median(r["start_s"] for r in mine),
            "median_steady_records_per_s": statistics.median(r["steady_records_per_s"] for r in mine),
            "identical": all(r["digest"] == reference for r in mine),
        })
    by = {s["run"]: s for s in summary}
    scaling = None
    if len(args.workers) >= 2:
        lo, hi = f"ray {args.workers[0]}", f"ray {args.workers[-1]}"
        scaling = {"from": args.workers[0], "to": args.workers[-1],
                   "records_per_s": by[hi]["median_records_per_s"] / by[lo]["median_records_per_s"],
                   "steady": by[hi]["median_steady_records_per_s"] / by[lo]["median_steady_records_per_s"]}
        if plain:
            rate = {n: statistics.median(r["records_per_s"] for r in plain if r["run"] == f"plain {n}")
                    for n in (args.workers[0], args.workers[-1])}
            scaling["ceiling"] = rate[args.workers[-1]] / rate[args.workers[0]]
            scaling["steady_of_ceiling"] = scaling["steady"] / scaling["ceiling"]
    result = record("ray_scaling", vars(args), args.json,
                    environment=environment(ray=ray.__version__, loadavg_1_5_15_before=load_before),
                    dataset={"name": dataset.name, "samples": len(dataset),
                             "image_shape": list(dataset.image_shape)},
                    summary=summary, scaling=scaling, idle_ray_cpu_per_s=ray_idle, runs=runs, plain=plain)
    print(f"{dataset.name}, {len(dataset)} samples x {args.num_augs} augs, policy randaugment, teacher "
          f"{args.members} x SmallCNN-32, Ray {ray.__version__} with {args.cpus} CPUs, load average "
          f"{load_before[0]:.2f} -> {result['environment']['loadavg_1_5_15_at_end'][0]:.2f}\n")
    print(markdown(summary, scaling))
    print(f"\nan idle Ray instance used {ray_idle['ray_daemons']:.3f} CPU-s/s; everything else on the machine "
          f"{ray_idle['others_on_machine']:.2f} CPU-s/s (of {os.cpu_count()})\n")
    print(breakdown(runs))


if __name__ == "__main__":
    main()

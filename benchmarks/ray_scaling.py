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
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
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


def one_run(name: str, dataset: ImageDataset, members: list[nn.Module], config: ReinforceConfig,
            workdir: Path, *, threads: int, ray_options: RayOptions | None) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix="store-", dir=workdir))
    default_threads = torch.get_num_threads()
    torch.set_num_threads(threads)  # the local engine's teacher threads (the Ray driver only probes)
    try:
        t0 = time.perf_counter()
        store = drkit.reinforce(dataset, members, out / "s", config, progress=False,
                                engine="ray" if ray_options else "local", ray_options=ray_options)
        wall = time.perf_counter() - t0
    finally:
        torch.set_num_threads(default_threads)
    st = store.run_stats or {}
    start = float(st.get("workers_ready_s", 0.0))
    after = int(st.get("records_after_ready", st["records_computed"]))
    return {"run": name, "records": st["records_computed"], "seconds": st["seconds"],
            "records_per_s": st["records_per_s"], "start_s": start,
            "steady_records_per_s": after / (st["seconds"] - start) if after else float("nan"),
            "wall_seconds_with_setup": wall, "digest": store_digest(store.root)}


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
    load_before = os.getloadavg()
    runs = []
    with tempfile.TemporaryDirectory(prefix="drkit-ray-scaling-") as tmp:
        small = dataset.subset(np.arange(min(256, len(dataset))))  # type: ignore[attr-defined]
        one_run("warm-up", small, members, pinned, Path(tmp), threads=1, ray_options=None)
        for rnd in range(args.rounds):
            for name, cfg, threads, opts in plans:
                r = one_run(name, dataset, members, cfg, Path(tmp), threads=threads, ray_options=opts)
                r["round"] = rnd
                runs.append(r)
                print(f"round {rnd} {name}: {r['records_per_s']:.0f} records/s, start {r['start_s']:.1f} s, "
                      f"steady {r['steady_records_per_s']:.0f}", file=sys.stderr)
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
    result = record("ray_scaling", vars(args), args.json,
                    environment=environment(ray=ray.__version__, loadavg_1_5_15_before=load_before),
                    dataset={"name": dataset.name, "samples": len(dataset),
                             "image_shape": list(dataset.image_shape)},
                    summary=summary, scaling=scaling, runs=runs)
    print(f"{dataset.name}, {len(dataset)} samples x {args.num_augs} augs, policy randaugment, teacher "
          f"{args.members} x SmallCNN-32, Ray {ray.__version__} with {args.cpus} CPUs, load average "
          f"{load_before[0]:.2f} -> {result['environment']['loadavg_1_5_15_at_end'][0]:.2f}\n")
    print(markdown(summary, scaling))


if __name__ == "__main__":
    main()

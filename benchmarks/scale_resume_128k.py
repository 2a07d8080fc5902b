"""Resume an interrupted ``benchmarks.scale`` store and record its reinforce figures where
``benchmarks.scale --reuse`` picks them up (``reinforce.json`` beside the store).

``benchmarks.scale`` measures a configuration from scratch and deletes an unfinished store; this
script instead resumes it with ``drkit reinforce`` (the same command the benchmark runs, here with
``--num-workers``), verifies it, and records the resumed run's rate with how many shards were kept.
Used on 2026-12-06 for 128 k x 100 (killed at 51 of 125 shards, resumed with 2 DataLoader workers)::

    python -m benchmarks.scale_resume_128k --work /work/scale-work/keyed10 --samples 128000 --augs 100 \\
        --num-workers 2 --why "restarted with 2 DataLoader workers"
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks import scale
from drkit.reinforcement.store import Store


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, required=True, help="the --work folder of benchmarks.scale")
    p.add_argument("--samples", type=int, default=128000)
    p.add_argument("--augs", type=int, default=100)
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--why", default="", help="why the first run was stopped (recorded)")
    a = p.parse_args(argv)
    n, augs = a.samples, a.augs
    data, store = a.work / f"data-n{n}-c1000.npz", a.work / f"n{n}_a{augs}" / "store"
    args = scale.parse_args(["--sizes", str(n), "--augs", str(augs), "--work", str(a.work),
                             "--num-workers", str(a.num_workers)])
    before = sum(1 for _ in store.glob("shard-*.npy"))
    run = scale.run_to_end(scale.reinforce_cmd(data, store, augs, args), scale.subprocess_env(args.threads))
    stats = run["run_stats"]
    t0 = time.perf_counter()
    verified = Store.open(store).verify()
    verify_s = time.perf_counter() - t0
    result = {"records": n * augs, "shards": -(-n // args.shard_size),
              "resumed": {"shards_on_disk_before": before, "records_kept": n * augs - stats["records_computed"],
                          "why": a.why, "verify_ok": verified["records"] == n * augs, "verify_s": verify_s},
              "records_per_s": stats["records_per_s"], "compute_s": stats["seconds"], "wall_s": run["wall_s"],
              "us_per_record": 1e6 / stats["records_per_s"],
              "cpu_us_per_record_with_setup": 1e6 * run["cpu_s"] / stats["records_computed"],
              "records_timed": stats["records_computed"], "loadavg_before": run["loadavg_before"],
              "loadavg_after": run["loadavg_after"]}
    (store.parent / "reinforce.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

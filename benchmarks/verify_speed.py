"""``Store.verify()`` against ``sha256sum`` on the same files, for stores already on disk (the
``verify`` column of ``benchmarks/scale.py``, rerun alone after a change to ``verify``).

Run::

    python -m benchmarks.verify_speed --rounds 5 --json benchmarks/results/verify_speed.json \\
        /work/scale-work/keyed1/n10000_a1/store /work/scale-work/keyed1/n1280000_a1/store
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks._common import environment, record
from benchmarks.scale import verify_vs_sha256sum
from drkit.reinforcement.store import Store


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stores", type=Path, nargs="+")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians reported)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    rows = []
    for store in args.stores:
        s = Store.open(store, verify=False)
        row = {"store": str(store), "samples": s.num_samples, "augs": s.num_augs, "shards": len(s.shards),
               **verify_vs_sha256sum(store, args.rounds)}
        rows.append(row)
        print(f"{s.num_samples} x {s.num_augs} ({row['files']} files, {row['bytes'] / 1e6:.1f} MB): verify "
              f"{row['verify_mb_s']:.0f} MB/s, sha256sum {row['sha256sum_mb_s']:.0f} MB/s, ratio {row['ratio']:.2f}, "
              f"load {row['loadavg']}", flush=True)
    settings = {**vars(args), "stores": [str(s) for s in args.stores]}
    record("verify_speed", settings, args.json, environment=environment(), results=rows)


if __name__ == "__main__":
    main()

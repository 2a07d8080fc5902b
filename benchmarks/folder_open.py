"""What opening an image folder costs: the scan (every file decoded once, for bad files and the
channel majority) and the dataset fingerprint (up to 4,096 images decoded and hashed) — the two
reads that ``ReinforcedDataset(imagefolder, store)`` and ``drkit train --mode dr`` pay before the
first step — cold (empty drkit cache), warm (the cache of the previous open) and after one file
changed (touched: its stat differs, so it is re-read and the fingerprint recomputed).

The OS page cache is warm in every case (the files were just written): what is measured is
decoding, not disk reads. Each figure is the median of ``--repeats``.

    python -m benchmarks.folder_open --files 600 --json benchmarks/results/folder_open.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks._common import environment, record
from drkit.data import ImageFolderDataset, dataset_fingerprint


def make_folder(root: Path, files: int, side: int, classes: int = 10, seed: int = 0) -> Path:
    """``files`` RGB JPEGs (smooth gradients plus noise, about ``side`` px, sizes varying a little,
    as photos do), spread over ``classes`` class folders."""
    rng = np.random.default_rng(seed)
    for k in range(files):
        h, w = side + int(rng.integers(-side // 8, side // 8)), side + int(rng.integers(-side // 8, side // 8))
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([(x * 255 // w), (y * 255 // h), ((x + y) * 127 // (h + w))], -1)
        img = np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
        d = root / f"c{k % classes}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{k:05d}.jpg", quality=90)
    return root


def open_and_fingerprint(root: Path) -> tuple[float, float, str]:
    t0 = time.perf_counter()
    ds = ImageFolderDataset(root)
    t1 = time.perf_counter()
    fp = dataset_fingerprint(ds)
    return t1 - t0, time.perf_counter() - t1, fp["content_sha256"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=600)
    ap.add_argument("--side", type=int, default=256, help="about this many pixels per side")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's); 1 avoids OpenMP "
                    "hand-offs in read_image's per-image tensor ops, which dominate on a busy machine")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    times: dict[str, list[float]] = {f"{what}_{case}": [] for case in ("cold", "warm", "one_changed")
                                     for what in ("scan", "fingerprint")}
    with tempfile.TemporaryDirectory() as tmp:
        root = make_folder(Path(tmp) / "images", args.files, args.side)
        first = next(iter(sorted(root.rglob("*.jpg"))))
        for r in range(args.repeats):
            os.environ["DRKIT_CACHE"] = str(Path(tmp) / f"cache{r}")  # empty: a cold open
            digests = set()
            for case in ("cold", "warm", "one_changed"):
                if case == "one_changed":
                    os.utime(first, ns=(time.time_ns(), time.time_ns()))
                scan, fp, digest = open_and_fingerprint(root)
                times[f"scan_{case}"].append(scan)
                times[f"fingerprint_{case}"].append(fp)
                digests.add(digest)
            assert len(digests) == 1, "the fingerprint must not depend on the cache"
    med = {k: statistics.median(v) for k, v in times.items()}
    total = {case: med[f"scan_{case}"] + med[f"fingerprint_{case}"] for case in ("cold", "warm", "one_changed")}
    result = record("folder_open", vars(args), args.json, environment=environment(), raw=times, median=med,
                    total_seconds=total, warm_over_cold=total["warm"] / total["cold"])
    print(json.dumps({"median": med, "total_seconds": total, "warm_over_cold": result["warm_over_cold"]}, indent=2))


if __name__ == "__main__":
    main()

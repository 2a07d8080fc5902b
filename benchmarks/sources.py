"""What the streamed and columnar sources cost (issue 23, point 2): opening ``wds:`` shards (the
index, cold and cached), reading images by index from ``wds:`` and ``hf:`` against the same images
held in memory, and one training epoch's items from ``ReinforcedDataset`` (random reads, shuffled
order) against ``StreamedReinforcedDataset`` (shards in sequence, by both readers) on the same store.

The data is the first ``--samples`` Fashion-MNIST training images (digits without it) written as PNG
into ``--shards`` webdataset shards and into a Hugging Face ``save_to_disk`` folder; the store is a
``cropflip`` store of 2 augmentations from a width-4 SmallCNN (the teacher's quality does not
matter here). Everything lies on one local disk with a warm page cache (the files were just
written): the figures are per-sample CPU overheads, not cold-disk or network reads, where streaming
is meant to win. Items are read in one process (``num_workers=0``).

Run (about a minute on 2 busy CPU cores)::

    python -m benchmarks.sources --json benchmarks/results/sources.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
import webdataset as wds
from PIL import Image
from torch.utils.data import DataLoader

import drkit
from benchmarks._common import environment, load_data, record
from drkit.data import load_dataset
from drkit.data.webdataset_source import WebDatasetSource
from drkit.models import SmallCNN
from drkit.training.reinforced_dataset import ReinforcedDataset
from drkit.training.streamed import StreamedReinforcedDataset


def _png(image: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image.numpy()[0]).save(buf, "PNG")
    return buf.getvalue()


def write_sources(ds: Any, root: Path, shards: int) -> tuple[str, str]:
    per = -(-len(ds) // shards)
    for s in range(shards):
        with wds.TarWriter(str(root / f"part-{s:04d}.tar")) as w:
            for i in range(s * per, min(len(ds), (s + 1) * per)):
                w.write({"__key__": f"{i:06d}", "png": _png(ds.image(i)), "cls": str(int(ds.labels[i]))})
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(ds.classes))})
    datasets.Dataset.from_dict({"image": [{"bytes": _png(ds.image(i)), "path": None} for i in range(len(ds))],
                                "label": ds.labels.tolist()}, features=features).save_to_disk(str(root / "hf"))
    return f"wds:{root}/part-{{0000..{shards - 1:04d}}}.tar", f"hf:{root / 'hf'}"


def per_second(n: int, fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


def random_reads(ds: Any, n: int, seed: int = 0) -> float:
    idx = np.random.default_rng(seed).integers(0, len(ds), size=n)
    return per_second(n, lambda: [ds.image(int(i)) for i in idx])


def epoch_items(dataset: Any, *, shuffle: bool) -> float:
    loader = DataLoader(dataset, batch_size=64, shuffle=shuffle if shuffle else None, num_workers=0)
    return per_second(len(dataset), lambda: [None for _ in loader])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=10_000)
    p.add_argument("--shards", type=int, default=10)
    p.add_argument("--reads", type=int, default=5_000, help="random image reads timed per source")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    torch.set_num_threads(1)
    base = load_data(args.samples)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["XDG_CACHE_HOME"] = str(root / "cache")
        wds_name, hf_name = write_sources(base, root, args.shards)
        t0 = time.perf_counter()
        src = WebDatasetSource(wds_name[4:])
        index_cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        src = WebDatasetSource(wds_name[4:])
        index_cached = time.perf_counter() - t0
        hf = load_dataset(hf_name)
        reads = {"memory (ArrayDataset)": random_reads(base, args.reads), "wds (pread + PNG decode)":
                 random_reads(src, args.reads), "hf (arrow row + PNG decode)": random_reads(hf, args.reads)}
        torch.manual_seed(0)
        teacher = SmallCNN(base.image_shape[0], base.num_classes, width=4).eval()
        store = drkit.reinforce(src, teacher, root / "store", policy="cropflip", num_augs=2, topk=3,
                                num_workers=0, progress=False)
        items = {
            "ReinforcedDataset(memory), shuffled": epoch_items(ReinforcedDataset(base, store), shuffle=True),
            "ReinforcedDataset(wds), shuffled": epoch_items(ReinforcedDataset(src, store), shuffle=True),
            "StreamedReinforcedDataset(wds, reader=index)": epoch_items(
                StreamedReinforcedDataset(src, store, reader="index"), shuffle=False),
            "StreamedReinforcedDataset(wds, reader=webdataset)": epoch_items(
                StreamedReinforcedDataset(src, store, reader="webdataset"), shuffle=False),
        }
    result = record("sources", {**vars(args), "data": base.name}, args.json,
                    index_seconds={"cold": index_cold, "cached": index_cached},
                    random_reads_per_second=reads, epoch_items_per_second=items, environment=environment())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

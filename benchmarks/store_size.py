"""Bytes per stored augmentation for a 1000-class teacher at k=10, per policy.

What is measured (a real reinforcement run, not a formula):

- ``disk``: ``store.nbytes() / (samples * augs)`` -- the ``.npy`` shards as written, headers
  included, memory-mappable and randomly accessible record by record;
- ``record``: the record dtype's itemsize (the per-record part of ``disk``, without headers),
  split into augmentation parameters / float16 probabilities / class ids;
- ``gzip``: Python ``gzip`` (level 6) of the concatenated shard files, per record -- comparable
  with Apple ml-dr's tar.gz archives (65 / 73 / 90 / 104 bytes per augmentation), which are not
  randomly accessible;
- ``gzip cols``: the same, field by field (a column layout), to show what a column-wise archive
  would gain -- drkit does not store that layout.

The dataset is synthetic: ``--samples`` 3x32x32 uint8 images of 1000 classes, each a smooth
random class template plus noise. The uncompressed size does not depend on the content; the
gzip size does (a teacher whose top-10 class ids repeat across augmentations compresses
better), so the default teacher is a cheap template matcher whose outputs look like a trained
teacher's (a confident top-1, mostly the true class, a tail that changes with the augmentation):
its logits are ``-||x - template_c||^2 / (2 tau)``, a single 3072 -> 1000 linear layer.
``--teacher conv`` uses a randomly initialised tiny conv net + linear(1000) instead, its logits
standardised and scaled: a less confident teacher whose winning classes are arbitrary but shared
by many images (its class ids compress better, its probabilities worse). Output statistics are
reported next to the sizes so the gzip figure can be judged.

Run (1-2 minutes on 2 CPU cores)::

    python -m benchmarks.store_size --json benchmarks/results/store_size.json
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import drkit
from benchmarks._common import environment, record
from drkit.data import ArrayDataset

POLICIES = ("cropflip", "randaugment", "mixing", "randaugment+mixing")
# Goals of the issue (bytes per stored augmentation); None: no goal set.
GOALS: dict[str, int | None] = {"cropflip": 50, "randaugment": 64, "mixing": None, "randaugment+mixing": 90}
# apple/ml-dr ImageNet+ tar.gz archives, bytes per stored augmentation (ANCHORS.md), mapped to
# our policy names: RRC = cropflip, +RA-RE = randaugment, +mixing = mixing, +mixing+RA-RE = both.
ML_DR_GZIP = {"cropflip": 65, "randaugment": 73, "mixing": 90, "randaugment+mixing": 104}


# --------------------------------------------------------------------------- data and teacher


def synthetic_dataset(num_samples: int, num_classes: int = 1000, size: int = 32,
                      seed: int = 0) -> tuple[ArrayDataset, torch.Tensor]:
    """``num_samples`` uint8 images (3, size, size), labels ``i % num_classes``: a smooth random
    template per class (4x4 noise upsampled) plus per-image Gaussian noise. Returns the dataset
    and the templates as float (num_classes, 3, size, size) in [0, 1]."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.uniform(0, 1, (num_classes, 3, 4, 4)).astype(np.float32))
    templates = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    labels = np.arange(num_samples) % num_classes
    noise = rng.normal(0, 0.1, (num_samples, 3, size, size)).astype(np.float32)
    images = np.clip(templates.numpy()[labels] + noise, 0, 1)
    images = np.round(images * 255).astype(np.uint8)
    classes = [f"class{c:04d}" for c in range(num_classes)]
    return ArrayDataset(images, labels, classes=classes, name=f"synthetic{num_classes}"), templates


class TemplateTeacher(nn.Module):
    """Nearest-template classifier: logits ``-||x - t_c||^2 / (2 tau)`` (up to a per-image
    constant), i.e. one linear layer ``x @ T^T - ||t_c||^2 / 2`` scaled by ``1 / tau``."""

    def __init__(self, templates: torch.Tensor, tau: float) -> None:
        super().__init__()
        t = templates.flatten(1)
        self.register_buffer("weight", t)
        self.register_buffer("bias", -0.5 * (t * t).sum(1))
        self.tau = float(tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) @ self.weight.T + self.bias) / self.tau


class ConvTeacher(nn.Module):
    """A randomly initialised tiny conv net + linear(num_classes) head. Its raw logits are nearly
    flat, so they are standardised per image and multiplied by ``scale`` to give a trained
    teacher's confidence; which classes win is arbitrary but varies with the input."""

    def __init__(self, num_classes: int = 1000, scale: float = 4.0, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16 * 8 * 8, num_classes),
        )
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net(x)
        return (z - z.mean(1, keepdim=True)) / z.std(1, keepdim=True) * self.scale


def make_teacher(kind: str, templates: torch.Tensor, tau: float, scale: float) -> nn.Module:
    if kind == "template":
        return TemplateTeacher(templates, tau)
    return ConvTeacher(templates.shape[0], scale)


# --------------------------------------------------------------------------- measurement


def field_bytes(dtype: np.dtype) -> dict[str, int]:
    """Itemsize split into augmentation parameters, probabilities and class ids."""
    probs = dtype.fields["probs"][0].itemsize
    ids = dtype.fields["classes"][0].itemsize if "classes" in dtype.names else 0
    return {"params": dtype.itemsize - probs - ids, "probs": probs, "classes": ids}


def gzip_sizes(store: drkit.Store, level: int = 6) -> tuple[int, dict[str, int]]:
    """gzip size of the concatenated shard files, and of the same records compressed field by
    field (a column layout), grouped into params / probs / classes."""
    files = b"".join((store.root / s.file).read_bytes() for s in store.shards)
    whole = len(gzip.compress(files, compresslevel=level))
    records = np.concatenate([np.load(store.root / s.file, allow_pickle=False).reshape(-1)
                              for s in store.shards])
    cols = {"params": 0, "probs": 0, "classes": 0}
    for name in records.dtype.names:
        size = len(gzip.compress(np.ascontiguousarray(records[name]).tobytes(), compresslevel=level))
        cols[name if name in ("probs", "classes") else "params"] += size
    return whole, cols


def output_stats(store: drkit.Store, labels: np.ndarray) -> dict[str, float]:
    """How the teacher's stored outputs look: confidence, accuracy, consistency across augs."""
    recs = np.concatenate([np.load(store.root / s.file, allow_pickle=False) for s in store.shards])
    probs = recs["probs"].astype(np.float32)  # (N, A, k)
    top1 = recs["classes"][..., 0].astype(np.int64)  # (N, A)
    mode = np.array([np.bincount(row).argmax() for row in top1])
    return {
        "mean_top1_prob": float(probs[..., 0].mean()),
        "mean_topk_mass": float(probs.sum(-1).mean()),
        "top1_is_label": float((top1 == labels[:, None]).mean()),
        "top1_agrees_across_augs": float((top1 == mode[:, None]).mean()),
    }


def measure_policy(policy: str, dataset: ArrayDataset, teacher: nn.Module, workdir: Path,
                   args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    store = drkit.reinforce(dataset, teacher, workdir / policy.replace("+", "_"), policy=policy,
                            num_augs=args.num_augs, topk=args.topk, shard_size=args.shard_size,
                            num_workers=args.num_workers, device="cpu", progress=False)
    seconds = time.perf_counter() - t0
    n_rec = store.num_samples * store.num_augs
    gz, gz_cols = gzip_sizes(store)
    return {
        "policy": policy,
        "records": n_rec,
        "shards": len(store.shards),
        "disk_bytes": store.nbytes(),
        "disk_bytes_per_record": store.bytes_per_record(),
        "npy_header_bytes_per_shard": (store.nbytes() - n_rec * store.record_dtype.itemsize) / len(store.shards),
        "record_itemsize": store.record_dtype.itemsize,
        "record_fields": field_bytes(store.record_dtype),
        "gzip_bytes_per_record": gz / n_rec,
        "gzip_columns_bytes_per_record": sum(gz_cols.values()) / n_rec,
        "gzip_columns_fields_bytes_per_record": {k: v / n_rec for k, v in gz_cols.items()},
        "goal_bytes": GOALS[policy],
        "goal_met": None if GOALS[policy] is None else store.bytes_per_record() <= GOALS[policy],
        "ml_dr_gzip_bytes": ML_DR_GZIP[policy],
        "teacher_outputs": output_stats(store, dataset.labels),
        "reinforce_seconds": seconds,
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    out = [
        "| policy | record B (params+probs+ids) | on disk B/aug | goal | gzip B/aug "
        "| gzip by column B/aug (params+probs+ids) | ml-dr gzip B/aug |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        f, c = r["record_fields"], r["gzip_columns_fields_bytes_per_record"]
        goal = "-" if r["goal_bytes"] is None else f"≤ {r['goal_bytes']} ({'met' if r['goal_met'] else 'NOT met'})"
        out.append(
            f"| {r['policy']} | {r['record_itemsize']} ({f['params']}+{f['probs']}+{f['classes']}) "
            f"| {r['disk_bytes_per_record']:.2f} | {goal} | {r['gzip_bytes_per_record']:.1f} "
            f"| {r['gzip_columns_bytes_per_record']:.1f} ({c['params']:.1f}+{c['probs']:.1f}+{c['classes']:.1f}) "
            f"| {r['ml_dr_gzip_bytes']} |"
        )
    out += ["", "| policy | mean top-1 prob | mean top-k mass | top-1 = label | top-1 agrees across augs |",
            "|---|---|---|---|---|"]
    for r in rows:
        s = r["teacher_outputs"]
        out.append(f"| {r['policy']} | {s['mean_top1_prob']:.3f} | {s['mean_topk_mass']:.3f} "
                   f"| {s['top1_is_label']:.3f} | {s['top1_agrees_across_augs']:.3f} |")
    return "\n".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--samples", type=int, default=2048, help="synthetic images")
    p.add_argument("--classes", type=int, default=1000, help="classes of the synthetic dataset and teacher")
    p.add_argument("--num-augs", type=int, default=8, help="stored augmentations per sample")
    p.add_argument("--topk", type=int, default=10, help="teacher probabilities kept per augmentation")
    p.add_argument("--shard-size", type=int, default=1024, help="samples per shard")
    p.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    p.add_argument("--teacher", choices=("template", "conv"), default="template",
                   help="template matcher (trained-teacher-like outputs) or a random tiny conv net")
    p.add_argument("--tau", type=float, default=3.0, help="temperature of the template teacher")
    p.add_argument("--conv-scale", type=float, default=4.0,
                   help="logit scale of the conv teacher (standardised logits times this)")
    p.add_argument("--num-workers", type=int, default=-1, help="DataLoader workers for reinforcement")
    p.add_argument("--out", type=Path, default=None, help="keep the stores here (default: a temporary directory)")
    p.add_argument("--json", type=Path, default=None, help="write the results as JSON to this path")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    dataset, templates = synthetic_dataset(args.samples, args.classes)
    teacher = make_teacher(args.teacher, templates, args.tau, args.conv_scale)
    with tempfile.TemporaryDirectory(prefix="drkit-store-size-") as tmp:
        workdir = args.out or Path(tmp)
        rows = [measure_policy(p, dataset, teacher, workdir, args) for p in args.policies]
    print(f"synthetic {args.classes}-class dataset, {args.samples} samples x {args.num_augs} augs, "
          f"k={args.topk}, shard_size={args.shard_size}, teacher={args.teacher}\n")
    print(markdown(rows))
    record("store_size", vars(args), args.json, environment=environment(), results=rows)


if __name__ == "__main__":
    main()

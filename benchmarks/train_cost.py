"""Training cost of dataset reinforcement, as ratios measured in one run on one machine.

- epoch time DR / ERM for the same architecture, policy, optimizer and batch size (goal ≤ 1.03);
- data-loading throughput DR / ERM (the DataLoader alone, no model);
- epoch time KD / DR (online teacher ensemble vs the store), with the teacher-to-student cost
  ratio (teacher forward vs student forward+backward on the same batch) next to it;
- DR with V views per decoded image (FKD's trick), per training image;
- with ``--mixing-workers``: a DataLoader epoch of DR on a ``--mixing-policy`` store (exact replay: the
  partner's own stored crop/flip is replayed too, per item) over a torchvision loop that mixes
  each batch with itself (``v2.MixUp``/``v2.CutMix`` after collation, the partner's view free),
  at each given worker count. ``--only-mixing`` skips the rest.

Each timing is the median of ``--repeats`` alternating measurements, so a slow spell of the
machine hits both sides of a ratio.

    python -m benchmarks.train_cost --samples 8192 --json benchmarks/results/train_cost.json
    python -m benchmarks.train_cost --only-mixing --mixing-workers 0 2 --json benchmarks/results/train_cost_mixing.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, default_collate
from torchvision.transforms import v2

import drkit
from benchmarks._common import environment, load_data, record
from drkit.models import create_model
from drkit.training.fresh import FreshAugmented
from drkit.training.loop import TrainConfig, Trainer


def make_teacher(arch: str, members: int, ds: drkit.ImageDataset) -> drkit.TeacherEnsemble:
    c, h, w = ds.image_shape
    models = []
    for k in range(members):
        torch.manual_seed(100 + k)
        models.append(create_model(arch, num_classes=ds.num_classes, in_chans=c, image_size=(h, w)))
    return drkit.TeacherEnsemble(models)


class TorchvisionPerItem(Dataset):
    """A plain torchvision pipeline of a mixing policy's per-item part: RandomResizedCrop (drkit's
    scale for the image size) + horizontal flip (+ RandAugment and RandomErasing for
    ``randaugment+mixing``), to float; labels as class ids."""

    def __init__(self, ds: drkit.ImageDataset, policy: drkit.Policy) -> None:
        self.ds = ds
        cfg = policy.config
        steps = [v2.RandomResizedCrop(list(policy.size), scale=cfg.scale, ratio=cfg.ratio, antialias=True),
                 v2.RandomHorizontalFlip(cfg.flip_p)]
        if cfg.uses_randaugment:
            steps.append(v2.RandAugment(num_ops=cfg.ra_num_ops, magnitude=cfg.ra_magnitude,
                                        num_magnitude_bins=cfg.ra_num_bins))
        steps.append(v2.ToDtype(torch.float32, scale=True))
        if cfg.uses_randaugment:
            steps.append(v2.RandomErasing(cfg.erase_p, scale=cfg.erase_scale, ratio=cfg.erase_ratio))
        self.transform = v2.Compose(steps)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        return self.transform(self.ds.image(i)), int(self.ds.labels[i])


class BatchMix:
    """collate_fn: stack, then MixUp or CutMix (50 %) of the batch with itself, torchvision's way."""

    def __init__(self, num_classes: int, alpha: float) -> None:
        self.mix = v2.RandomChoice([v2.MixUp(alpha=alpha, num_classes=num_classes),
                                    v2.CutMix(alpha=alpha, num_classes=num_classes)])

    def __call__(self, batch):
        return self.mix(*default_collate(batch))


def mixing_seconds(dataset, batch_size: int, workers: int, collate=None) -> float:
    """Seconds of one DataLoader epoch (no model)."""
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(0)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, collate_fn=collate,
                        generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - t0


def mixing_cost(ds: drkit.ImageDataset, teacher: drkit.TeacherEnsemble, root: Path, args) -> dict:
    """DR mixing replay vs torchvision batch mixing, DataLoader epochs, per worker count."""
    store = drkit.reinforce(ds, list(teacher.members)[:1], root / "store-mixing", policy=args.mixing_policy,
                            num_augs=args.num_augs, topk=10, device="cpu", progress=False)
    dr = drkit.ReinforcedDataset(ds, store)
    tv = TorchvisionPerItem(ds, dr.policy)
    collate = BatchMix(ds.num_classes, dr.policy.config.mix_alpha)
    raw: dict[str, list[float]] = {}
    for r in range(args.repeats):
        for w in args.mixing_workers:
            print(f"mixing repeat {r + 1}/{args.repeats}, {w} workers", flush=True)
            raw.setdefault(f"dr_mixing_w{w}", []).append(mixing_seconds(dr, args.batch_size, w))
            raw.setdefault(f"torchvision_batch_mixing_w{w}", []).append(
                mixing_seconds(tv, args.batch_size, w, collate))
    med = {k: statistics.median(v) for k, v in raw.items()}
    return {"raw": raw, "median": med, "ratios": {
        f"dr_mixing_over_torchvision_batch_mixing_w{w}": med[f"dr_mixing_w{w}"] / med[f"torchvision_batch_mixing_w{w}"]
        for w in args.mixing_workers}}


def loader_throughput(dataset, batch_size: int, workers: int) -> float:
    """Items per second of iterating one epoch of the DataLoader."""
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(0)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    n = sum(len(b[0]) for b in loader)
    return n / (time.perf_counter() - t0)


def epoch_seconds(arch: str, data, ds: drkit.ImageDataset, batch_size: int, workers: int, teacher=None) -> float:
    c, h, w = ds.image_shape
    torch.manual_seed(0)
    model = create_model(arch, num_classes=ds.num_classes, in_chans=c, image_size=(h, w))
    trainer = Trainer(model, data, TrainConfig(epochs=1, batch_size=batch_size, num_workers=workers, device="cpu"),
                      teacher=teacher)
    return trainer.run_epoch(progress=False)["seconds"]


def cost_ratio(arch: str, teacher: drkit.TeacherEnsemble, ds: drkit.ImageDataset, batch_size: int) -> float:
    """Teacher forward time / student forward+backward+step time on one batch (median of 10)."""
    c, h, w = ds.image_shape
    x = torch.rand(batch_size, c, h, w)
    student = create_model(arch, num_classes=ds.num_classes, in_chans=c, image_size=(h, w))
    opt = torch.optim.AdamW(student.parameters())

    def step() -> None:
        loss = student(x).logsumexp(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    def timed(fn) -> float:
        fn()
        ts = []
        for _ in range(10):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    with torch.no_grad():
        t_teacher = timed(lambda: teacher(x))
    return t_teacher / timed(step)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=8192)
    ap.add_argument("--arch", default="smallcnn")
    ap.add_argument("--teacher-arch", default="smallcnn-64")
    ap.add_argument("--teacher-members", type=int, default=3)
    ap.add_argument("--policy", default="randaugment")
    ap.add_argument("--num-augs", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--workers", type=int, default=1, help="DataLoader workers for training epochs")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--mixing-workers", type=int, nargs="*", default=[],
                    help="also time DR mixing replay vs torchvision batch mixing at these DataLoader worker counts")
    ap.add_argument("--mixing-policy", default="randaugment+mixing", choices=("mixing", "randaugment+mixing"))
    ap.add_argument("--only-mixing", action="store_true", help="only the mixing comparison (--mixing-workers, "
                    "default 0 2)")
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    ds = load_data(args.samples)
    teacher = make_teacher(args.teacher_arch, args.teacher_members, ds)
    if args.only_mixing:
        args.mixing_workers = args.mixing_workers or [0, 2]
        with tempfile.TemporaryDirectory() as tmp:
            mixing = mixing_cost(ds, teacher, Path(tmp), args)
        result = record("train_cost_mixing", {**vars(args), "dataset": ds.name}, args.json,
                        environment=environment(), **mixing)
        print(json.dumps(result["ratios"], indent=2))
        print(json.dumps(result["median"], indent=2))
        return
    with tempfile.TemporaryDirectory() as tmp:
        store = drkit.reinforce(ds, list(teacher.members), Path(tmp) / "store", policy=args.policy,
                                num_augs=args.num_augs, topk=10, device="cpu", progress=False)
        erm = FreshAugmented(ds, args.policy, seed=0)
        dr = drkit.ReinforcedDataset(ds, store)
        dr_views = {v: drkit.ReinforcedDataset(ds, store, views=v) for v in (2, 4)}

        load = {"erm": [], "dr": []}
        epochs = {"erm": [], "dr": [], "kd": [], **{f"dr_views{v}": [] for v in dr_views}}
        for r in range(args.repeats):
            print(f"repeat {r + 1}/{args.repeats}", flush=True)
            load["erm"].append(loader_throughput(erm, args.batch_size, 0))
            load["dr"].append(loader_throughput(dr, args.batch_size, 0))
            epochs["erm"].append(epoch_seconds(args.arch, erm, ds, args.batch_size, args.workers))
            epochs["dr"].append(epoch_seconds(args.arch, dr, ds, args.batch_size, args.workers))
            epochs["kd"].append(epoch_seconds(args.arch, erm, ds, args.batch_size, args.workers, teacher=teacher))
            for v, d in dr_views.items():
                # V views per item: batch_size/V items keep the images per step equal
                epochs[f"dr_views{v}"].append(
                    epoch_seconds(args.arch, d, ds, args.batch_size // v, args.workers) / v)
        ratio = cost_ratio(args.arch, teacher, ds, args.batch_size)
        mixing = mixing_cost(ds, teacher, Path(tmp), args) if args.mixing_workers else None

    raw = {**{f"load_{k}": v for k, v in load.items()}, **epochs}
    med = {k: statistics.median(v) for k, v in raw.items()}
    result = record("train_cost", {**vars(args), "dataset": ds.name}, args.json,
                    environment=environment(), raw=raw, median=med, ratios={
                        "epoch_dr_over_erm": med["dr"] / med["erm"],
                        "loading_dr_over_erm": med["load_dr"] / med["load_erm"],
                        "epoch_kd_over_dr": med["kd"] / med["dr"],
                        "teacher_over_student_step": ratio,
                        **{f"epoch_dr_views{v}_over_erm": med[f"dr_views{v}"] / med["erm"] for v in dr_views},
                    }, **({"mixing": mixing} if mixing else {}))
    print(json.dumps(result["ratios"], indent=2))
    print(json.dumps(result["median"], indent=2))


if __name__ == "__main__":
    main()

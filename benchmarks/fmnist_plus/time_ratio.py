"""How large must the teacher be for DR to train in a third of online KD's time?

The time goal of docs/results/fmnist_plus.md (DR at <= 1/3 of online KD's training wall time) depends
on one ratio: what the teacher ensemble's forward pass costs next to the student's own training step.
DR pays only the student's step (its labels are read from the store); online KD pays that plus the
teachers' forward pass on every augmented batch. The cost does not depend on what the teachers know,
so this script times it with freshly initialised teachers of each size — no teacher training — on the
fmnist_plus standard profile's students, images and batch size:

    python -m benchmarks.fmnist_plus.time_ratio --out runs/time_ratio

For every student: ERM, DR (a store of the same images) and KD with ``--members`` copies of each
``--teachers`` architecture, each trained ``--epochs`` epochs on ``--images`` Fashion-MNIST training
images through ``drkit.runs.train_run`` (the harness's code path); the time of an arm is the
training time of its epochs after the first (warm-up). Arms run one after another in one process, so
the ratios are taken on the same machine under the same load. Writes ``time_ratio.json`` into
``--out`` and prints the table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import drkit
from drkit.data import stratified_subset
from drkit.inference import best_device
from drkit.models import create_model
from drkit.training.loop import TrainConfig
from drkit.training.runs import train_run

STUDENTS = ("smallcnn-16", "resnet18", "mobilenetv3_small_100", "vit-mini-4")
TEACHERS = ("smallcnn-48", "resnet18", "resnet34", "resnet50")


def parameters(arch: str, image_shape: tuple[int, int, int], num_classes: int) -> int:
    c, h, w = image_shape
    model = create_model(arch, num_classes=num_classes, in_chans=c, image_size=(h, w))
    return sum(p.numel() for p in model.parameters())


def size(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 100_000 else f"{n / 1e3:.1f} k"


def warm_seconds(metrics: dict[str, Any]) -> float:
    """Training seconds of every epoch after the first (all of them if there is only one)."""
    epochs = metrics["epochs"]
    return float(sum(e["seconds"] for e in (epochs[1:] or epochs)))


def summarise(rows: list[dict[str, Any]], teachers: list[str]) -> dict[str, Any]:
    """DR/KD and DR/ERM time per student and teacher, and the mean DR/KD per teacher over students."""
    by = {(r["student"], r["mode"], r.get("teacher")): r["seconds"] for r in rows}
    students = list(dict.fromkeys(r["student"] for r in rows))
    table = {s: {"dr_over_erm": by[s, "dr", None] / by[s, "erm", None],
                 "dr_over_kd": {t: by[s, "dr", None] / by[s, "kd", t] for t in teachers}} for s in students}
    mean = {t: float(np.mean([table[s]["dr_over_kd"][t] for s in students])) for t in teachers}
    return {"per_student": table, "mean_dr_over_kd": mean}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/time_ratio"))
    ap.add_argument("--students", default=",".join(STUDENTS), help="comma-separated student architectures")
    ap.add_argument("--teachers", default=",".join(TEACHERS), help="comma-separated teacher architectures")
    ap.add_argument("--members", type=int, default=3, help="teacher ensemble size (default 3, as the profile)")
    ap.add_argument("--images", type=int, default=1000, help="Fashion-MNIST training images (default 1000)")
    ap.add_argument("--epochs", type=int, default=2, help="epochs per arm; the first is warm-up (default 2)")
    ap.add_argument("--batch-size", type=int, default=32, help="as the standard profile (default 32)")
    ap.add_argument("--policy", default="randaugment", choices=drkit.POLICIES)
    ap.add_argument("--data", default="fashion-mnist", help="dataset spec (default fashion-mnist)")
    ap.add_argument("--device", help="cuda or cpu (default: best available)")
    args = ap.parse_args()
    if args.members < 1 or args.images < 10 or args.epochs < 1:
        sys.exit("--members, --images and --epochs must be positive (--images at least 10)")
    students = [s for s in args.students.split(",") if s]
    teachers = [t for t in args.teachers.split(",") if t]

    data = drkit.load_dataset(args.data)
    if args.images < len(data):
        data = data.subset(stratified_subset(data.labels, args.images / len(data), seed=0),
                           name=f"{data.name}[{args.images}]")
    shape, classes = data.image_shape, data.num_classes
    work = args.out / "work"
    shutil.rmtree(work, ignore_errors=True)  # every arm is timed fresh: nothing resumes
    work.mkdir(parents=True)

    # The store's records do not depend on what the teacher knows: a tiny untrained teacher makes it.
    torch.manual_seed(0)
    tiny = create_model("smallcnn-4", num_classes=classes, in_chans=shape[0], image_size=shape[1:])
    store = drkit.reinforce(data, [tiny], work / "store", policy=args.policy, num_augs=args.epochs, topk=classes,
                            device=args.device, progress=False)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, seed=0, device=args.device)

    def teacher_modules(arch: str) -> list[torch.nn.Module]:
        torch.manual_seed(1)
        return [create_model(arch, num_classes=classes, in_chans=shape[0], image_size=shape[1:])
                for _ in range(args.members)]

    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for s in students:
        arms: list[tuple[str, str | None]] = [("erm", None), ("dr", None), *(("kd", t) for t in teachers)]
        for mode, t in arms:
            run = work / (f"{s}-{mode}" + (f"-{t}" if t else ""))
            m = train_run(data, run, arch=s, mode=mode, store=store.root if mode == "dr" else None,
                          teachers=teacher_modules(t) if t else (), policy=args.policy, eval_data=None,
                          config=cfg, progress=False)
            row = {"student": s, "mode": mode, "teacher": t, "seconds": warm_seconds(m)}
            rows.append(row)
            print(f"{s:24s} {mode:3s} {t or '':12s} {row['seconds']:8.2f} s", flush=True)
    result = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "torch_threads": torch.get_num_threads(), "device": str(cfg.device or best_device()),
        "parameters": {a: parameters(a, shape, classes) for a in dict.fromkeys([*students, *teachers])},
        "rows": rows, **summarise(rows, teachers), "wall_seconds": time.perf_counter() - t0,
    }
    shutil.rmtree(work, ignore_errors=True)
    (args.out / "time_ratio.json").write_text(json.dumps(result, indent=2) + "\n")

    print(f"\nDR / KD training time, {args.members} teachers per ensemble (parameters in brackets):\n")
    params = result["parameters"]
    print("| student | DR / ERM | " + " | ".join(f"{args.members} × {t} ({size(params[t])})" for t in teachers) + " |")
    print("|---|---|" + "---|" * len(teachers))
    for s, r in result["per_student"].items():
        print(f"| {s} ({size(params[s])}) | {r['dr_over_erm']:.2f} | "
              + " | ".join(f"{r['dr_over_kd'][t]:.2f}" for t in teachers) + " |")
    print("| **mean** | | " + " | ".join(f"**{result['mean_dr_over_kd'][t]:.2f}**" for t in teachers) + " |")


if __name__ == "__main__":
    main()

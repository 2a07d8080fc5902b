"""bf16 autocast and channels-last on the CPU: speed as ratios against fp32, and accuracy.

The project's CPU has AVX512-BF16. For each architecture, on 28×28 grayscale batches:

- **teacher inference** (eval, no grad, batch 256): img/s of fp32 contiguous (the baseline),
  fp32 channels-last, bf16 autocast + channels-last; and the largest difference of the softmax
  from fp32's;
- **student training step** (forward + backward + AdamW, batch 64): fp32, fp32 channels-last,
  bf16 autocast + channels-last.

Each figure is the median of ``--repeats`` alternating measurements (a slow spell of the machine
hits every variant). Then the **accuracy check**: ``train_run(mode="erm")`` at fp32 and at bf16 on
the same ``--acc-samples`` Fashion-MNIST images for ``--acc-epochs``, per seed, test top-1 on all
10,000 test images. drkit makes the faster variant the default on CPU only where accuracy is
unchanged within the seeds' spread.

    python -m benchmarks.cpu_precision --json benchmarks/results/cpu_precision.json
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import drkit
from benchmarks._common import environment, record
from drkit.data import stratified_subset
from drkit.models import create_model
from drkit.training.loop import TrainConfig
from drkit.training.runs import train_run

VARIANTS = {"fp32": (False, False), "fp32 channels-last": (False, True), "bf16 + channels-last": (True, True)}


def _step_time(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, train: bool, bf16: bool, cl: bool,
               opt: torch.optim.Optimizer | None) -> float:
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    t0 = time.perf_counter()
    if train:
        with ctx:
            out = model(x)
        loss = F.cross_entropy(out.float(), y)
        opt.zero_grad()  # type: ignore[union-attr]
        loss.backward()
        opt.step()  # type: ignore[union-attr]
    else:
        with torch.no_grad(), ctx:
            model(x)
    return time.perf_counter() - t0


def speed(arch: str, *, train: bool, batch: int, repeats: int) -> dict[str, float]:
    """img/s of each variant, medians of alternating repeats."""
    models, opts = {}, {}
    for name, (_, cl) in VARIANTS.items():
        torch.manual_seed(0)
        m = create_model(arch, num_classes=10, in_chans=1, image_size=(28, 28)).train(train)
        models[name] = m.to(memory_format=torch.channels_last) if cl else m
        opts[name] = torch.optim.AdamW(m.parameters()) if train else None
    x, y = torch.rand(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    times: dict[str, list[float]] = {n: [] for n in VARIANTS}
    for r in range(repeats + 1):
        for name, (bf16, cl) in VARIANTS.items():
            t = _step_time(models[name], x, y, train=train, bf16=bf16, cl=cl, opt=opts[name])
            if r:  # the first round warms up oneDNN's kernels
                times[name].append(t)
    return {n: batch / statistics.median(ts) for n, ts in times.items()}


@torch.no_grad()
def prob_difference(arch: str) -> float:
    torch.manual_seed(0)
    m = create_model(arch, num_classes=10, in_chans=1, image_size=(28, 28)).eval()
    x = torch.rand(256, 1, 28, 28)
    ref = torch.softmax(m(x).float(), -1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = torch.softmax(m(x.contiguous(memory_format=torch.channels_last)).float(), -1)
    return float((ref - got).abs().max())


def accuracy(arch: str, idx, *, epochs: int, seeds: list[int]) -> dict[str, list[float]]:
    train = drkit.load_dataset("fashion-mnist")
    out: dict[str, list[float]] = {"fp32": [], "bf16": [], "seconds_fp32": [], "seconds_bf16": []}
    for seed in seeds:
        for precision in ("fp32", "bf16"):
            cfg = dataclasses.replace(TrainConfig(), epochs=epochs, seed=seed, precision=precision)
            with tempfile.TemporaryDirectory() as tmp:
                m = train_run(train, Path(tmp) / "r", arch=arch, mode="erm", eval_data="fashion-mnist:test",
                              indices=idx, config=cfg, progress=False)
            out[precision].append(float(m["final"]["top1"]))
            out[f"seconds_{precision}"].append(float(m["train_seconds"]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", nargs="+", default=["smallcnn-32", "resnet18", "mobilenetv3_small_100", "vit-mini-4"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--acc-archs", nargs="+", default=["smallcnn-32", "resnet18"])
    ap.add_argument("--acc-samples", type=int, default=5000)
    ap.add_argument("--acc-epochs", type=int, default=4)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    rows = {}
    print("| architecture | what | fp32 img/s | fp32 channels-last | bf16 + channels-last | max |Δp| (bf16) |")
    print("|---|---|---|---|---|---|")
    for arch in args.archs:
        inf = speed(arch, train=False, batch=256, repeats=args.repeats)
        tr = speed(arch, train=True, batch=64, repeats=args.repeats)
        dp = prob_difference(arch)
        rows[arch] = {"inference": inf, "training": tr, "max_prob_difference_bf16": dp}
        for what, r in (("teacher inference", inf), ("training step", tr)):
            base = r["fp32"]
            print(f"| {arch} | {what} | {base:.0f} | {r['fp32 channels-last'] / base:.2f}× | "
                  f"{r['bf16 + channels-last'] / base:.2f}× | {dp:.4f} |", flush=True)
    train = drkit.load_dataset("fashion-mnist")
    idx = stratified_subset(train.labels, args.acc_samples / len(train), seed=0)
    acc = {}
    print(f"\n| architecture | fp32 top-1 | bf16 top-1 | train time bf16/fp32 |  ({args.acc_samples} images, "
          f"{args.acc_epochs} epochs, seeds {args.seeds})\n|---|---|---|---|")
    for arch in args.acc_archs:
        a = accuracy(arch, idx, epochs=args.acc_epochs, seeds=args.seeds)
        acc[arch] = a
        ratio = sum(a["seconds_bf16"]) / sum(a["seconds_fp32"])
        print(f"| {arch} | {', '.join(f'{v:.2%}' for v in a['fp32'])} | {', '.join(f'{v:.2%}' for v in a['bf16'])} "
              f"| {ratio:.2f} |", flush=True)
    record("cpu_precision", vars(args), args.json, speed=rows, accuracy=acc, environment=environment())


if __name__ == "__main__":
    main()

"""Is ``drkit train --mode erm`` a fair baseline? Against a plain, well-tuned torchvision loop.

Teachers and ERM baselines come from drkit's trainer, so its defaults must not handicap them.
This script trains the same architecture on the same stratified subset of Fashion-MNIST for the
same number of epochs twice:

- **plain**: the loop a user writes by hand — torchvision v2 ``RandomResizedCrop`` + flip +
  ``RandAugment`` + ``ToDtype`` + ``RandomErasing``, AdamW at torch's defaults, batch 64, constant
  learning rate, cross-entropy (about 40 lines, in :func:`plain_loop`);
- **drkit**: ``drkit.runs.train_run(mode="erm")`` with drkit's *defaults* (``TrainConfig()``,
  the ``randaugment`` policy), plus any ``--variant NAME=FIELD:VALUE,...`` to try other settings;

and reports top-1 on all 10,000 test images for each, over ``--seeds`` seeds.

    python -m benchmarks.baseline_recipe --samples 2000 --epochs 6 --seeds 0 1 \\
        --json benchmarks/results/baseline_recipe.json
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

import drkit
from benchmarks._common import environment, parse_field, record
from drkit.data import stratified_subset
from drkit.models import create_model
from drkit.training.loop import TrainConfig
from drkit.training.runs import train_run


class _Plain(Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray, size: int) -> None:
        self.images, self.labels = torch.from_numpy(images), torch.from_numpy(labels)
        self.t = v2.Compose([v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip(), v2.RandAugment(),
                             v2.ToDtype(torch.float32, scale=True), v2.RandomErasing()])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.t(self.images[i]), self.labels[i]


def plain_loop(train: drkit.ImageDataset, idx: np.ndarray, test: drkit.ImageDataset, *, arch: str, epochs: int,
               seed: int) -> float:
    """The hand-written torchvision loop; returns test top-1."""
    torch.manual_seed(seed)
    c, h, w = train.image_shape
    data = _Plain(train.images[idx], train.labels[idx], h)  # type: ignore[attr-defined]
    loader = DataLoader(data, batch_size=64, shuffle=True)
    model = create_model(arch, num_classes=train.num_classes, in_chans=c, image_size=(h, w))
    opt = torch.optim.AdamW(model.parameters())
    for _ in range(epochs):
        model.train()
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return _test_top1(model, test)


@torch.no_grad()
def _test_top1(model: torch.nn.Module, test: drkit.ImageDataset) -> float:
    model.eval()
    x = torch.from_numpy(test.images).float() / 255  # type: ignore[attr-defined]
    pred = torch.cat([model(x[i:i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    return float((pred.numpy() == test.labels).mean())


def drkit_run(train: drkit.ImageDataset, idx: np.ndarray, *, arch: str, epochs: int, seed: int,
              overrides: dict[str, object]) -> float:
    cfg = dataclasses.replace(TrainConfig(), epochs=epochs, seed=seed, **overrides)
    with tempfile.TemporaryDirectory() as tmp:
        m = train_run(train, Path(tmp) / "run", arch=arch, mode="erm", eval_data="fashion-mnist:test", indices=idx,
                      config=cfg, progress=False)
    return float(m["final"]["top1"])


def _parse_variant(text: str) -> tuple[str, dict[str, object]]:
    """``NAME=FIELD:VALUE,...`` as ``(NAME, {FIELD: VALUE})``, each value typed by its TrainConfig field."""
    name, _, items = text.partition("=")
    defaults = TrainConfig()
    out: dict[str, object] = {}
    for item in filter(None, items.split(",")):
        k, _, v = item.partition(":")
        out[k] = parse_field(defaults, k, v, flag="--variant")
    return name, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=2000, help="stratified training images")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--arch", default="smallcnn-32")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--variant", action="append", default=[],
                    help="NAME=FIELD:VALUE,... other TrainConfig settings to try, e.g. b64=batch_size:64")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    train, test = drkit.load_dataset("fashion-mnist"), drkit.load_dataset("fashion-mnist:test")
    idx = stratified_subset(train.labels, args.samples / len(train), seed=0)
    arms: dict[str, dict[str, object]] = {"drkit defaults": {}}
    arms.update(dict(_parse_variant(v) for v in args.variant))
    results: dict[str, dict[str, object]] = {}
    rows = [("plain torchvision loop", None)] + [(k, v) for k, v in arms.items()]
    for name, overrides in rows:
        accs, t0 = [], time.perf_counter()
        for seed in args.seeds:
            if overrides is None:
                accs.append(plain_loop(train, idx, test, arch=args.arch, epochs=args.epochs, seed=seed))
            else:
                accs.append(drkit_run(train, idx, arch=args.arch, epochs=args.epochs, seed=seed, overrides=overrides))
        results[name] = {"top1": accs, "mean": statistics.mean(accs), "seconds": time.perf_counter() - t0,
                         "overrides": overrides}
        print(f"{name:<28} top-1 {statistics.mean(accs):.2%}  ({', '.join(f'{a:.2%}' for a in accs)})  "
              f"{results[name]['seconds']:.0f} s", flush=True)
    print(f"\n| recipe | test top-1 (mean of {len(args.seeds)} seeds) | per seed |\n|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['mean']:.2%} | {', '.join(f'{a:.2%}' for a in r['top1'])} |")
    record("baseline_recipe", vars(args), args.json, results=results, defaults=dataclasses.asdict(TrainConfig()),
           environment=environment())


if __name__ == "__main__":
    main()

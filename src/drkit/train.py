"""A baseline training loop others can import and benchmark against (airbench-style).

``train(model, data, config)`` fits any classifier on a dataset that yields
``(image, target distribution, label)``; :class:`FreshAugmented` is such a dataset for ordinary
training (ERM): each epoch samples new parameters of the same policy drkit reinforces with, and
the target is the one-hot label (mixed with the partner's for mixing policies). A finished run
is a directory (``config.json``, ``model.safetensors``, ``metrics.json``) that ``run:DIR`` turns
back into a teacher.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ._progress import progress_bar
from .data import ImageDataset
from .errors import ConfigError
from .losses import soft_target_cross_entropy
from .policies import Policy, PolicyConfig
from .teachers import best_device

__all__ = ["TrainConfig", "FreshAugmented", "train", "predict_probs", "save_run"]

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Optimisation settings (AdamW, linear warm-up then cosine decay)."""

    epochs: int = field(default=10, metadata={"help": "passes over the training set"})
    batch_size: int = field(default=128, metadata={"help": "images per step"})
    lr: float = field(default=2e-3, metadata={"help": "peak learning rate (AdamW)"})
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay"})
    warmup_epochs: float = field(default=1.0, metadata={"help": "linear warm-up length in epochs"})
    seed: int = field(default=0, metadata={"help": "seed of initialisation, augmentation and order"})
    num_workers: int = field(default=0, metadata={"help": "DataLoader workers"})
    device: str | None = field(default=None, metadata={"help": "cuda, mps or cpu (default: best available)"})

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.batch_size <= 0 or self.lr <= 0:
            raise ConfigError("epochs, batch_size and lr must be positive")


class FreshAugmented(Dataset):
    """``dataset`` augmented afresh each epoch with ``policy``: ``(view, one-hot target, label)``.

    Parameters are a pure function of (seed, index, epoch): call :meth:`set_epoch` every epoch.
    """

    def __init__(self, dataset: ImageDataset, policy: Policy | PolicyConfig | str, *, seed: int = 0) -> None:
        self.dataset = dataset
        self.policy = policy if isinstance(policy, Policy) else Policy(policy, dataset.image_shape)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        ds, policy, C = self.dataset, self.policy, self.dataset.num_classes
        params = policy.sample(self.seed, index, self.epoch, num_samples=len(ds), num_augs=1)
        label = int(ds.labels[index])
        target = torch.zeros(C)
        if policy.config.uses_mixing:
            p = int(params["partner"])
            x = policy.apply(ds.image(index), params, ds.image(p), policy.sample_base(self.seed, p, self.epoch))
            lam = policy.mix_weight(params)
            target[label] += lam
            target[int(ds.labels[p])] += 1.0 - lam
        else:
            x = policy.apply(ds.image(index), params)
            target[label] = 1.0
        return x, target, label


def _schedule(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def train(model: nn.Module, data: Dataset, config: TrainConfig | None = None, *, progress: bool = True,
          desc: str = "train") -> list[dict[str, float]]:
    """Fit ``model`` on ``data`` (items ``(image, target distribution, label)``) with soft-target
    cross-entropy. Calls ``data.set_epoch(e)`` when it exists. Returns per-epoch metrics."""
    cfg = config or TrainConfig()
    device = torch.device(cfg.device) if cfg.device else best_device()
    model.to(device).train()
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(data, batch_size=cfg.batch_size, shuffle=True, generator=gen, drop_last=False,
                        num_workers=cfg.num_workers, persistent_workers=cfg.num_workers > 0)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.epochs * len(loader)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: _schedule(s, total, max(1, int(cfg.warmup_epochs * len(loader))))
    )
    history = []
    bar = progress_bar(total, desc=desc, unit="step", enabled=progress)
    for epoch in range(cfg.epochs):
        if hasattr(data, "set_epoch"):
            data.set_epoch(epoch)
        t0, loss_sum, correct, n = time.perf_counter(), 0.0, 0, 0
        for x, target, label in loader:
            x, target, label = x.to(device), target.to(device), label.to(device)
            logits = model(x)
            loss = soft_target_cross_entropy(logits, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(x)
            correct += int((logits.argmax(-1) == label).sum())
            n += len(x)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / n:.3f}")
        history.append({"epoch": epoch, "loss": loss_sum / n, "train_acc": correct / n,
                        "seconds": time.perf_counter() - t0})
    bar.close()
    model.eval()
    return history


@torch.no_grad()
def predict_probs(model: nn.Module, dataset: ImageDataset, *, batch_size: int = 512,
                  device: torch.device | None = None) -> np.ndarray:
    """Softmax outputs ``(N, classes)`` on the un-augmented images (float64)."""
    device = device or next(model.parameters()).device
    model.eval().to(device)
    out = []
    for a in range(0, len(dataset), batch_size):
        x = torch.stack([dataset.image(i) for i in range(a, min(a + batch_size, len(dataset)))])
        x = x.to(device).float() / 255.0
        out.append(torch.softmax(model(x).float(), -1).double().cpu())
    return torch.cat(out).numpy()


def save_run(run_dir: str | Path, model: nn.Module, *, arch: str, dataset: ImageDataset,
             config: TrainConfig, metrics: dict[str, Any]) -> Path:
    """Write a run directory that ``run:DIR`` can load as a teacher."""
    from safetensors.torch import save_file

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    c, h, w = dataset.image_shape
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(run_dir / "model.safetensors"))
    (run_dir / "config.json").write_text(json.dumps(
        {"arch": arch, "num_classes": dataset.num_classes, "in_chans": c, "image_size": [h, w],
         "dataset": dataset.name, "train": asdict(config)}, indent=2) + "\n")
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return run_dir

"""``drkit demo``: the whole method end to end on bundled data (scikit-learn digits), offline.

1. Train a small teacher ensemble on the digits training split (each member a run directory,
   reusable as ``--teacher run:DIR``).
2. Reinforce the training split with the ensemble (default policy) into a store.

Every step is cached in the output directory: rerunning skips what is done.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import load_dataset
from .models import create_model
from .reinforce import ReinforceConfig, reinforce
from .teachers import TeacherEnsemble, load_teacher
from .train import FreshAugmented, TrainConfig, predict_probs, save_run, train

__all__ = ["DemoConfig", "run_demo"]

log = logging.getLogger(__name__)


@dataclass
class DemoConfig:
    out: str = "runs/demo"  # where runs and the store go
    teachers: tuple[str, ...] = ("smallcnn-32", "smallcnn-48", "smallcnn-64")  # ensemble members
    teacher_epochs: int = 30
    num_augs: int = 32
    seed: int = 0


def _accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(1) == labels).mean())


def run_demo(config: DemoConfig | None = None, *, progress: bool = True) -> dict[str, Any]:
    """Run the demo; returns what it measured (also written to ``OUT/demo.json``)."""
    cfg = config or DemoConfig()
    out = Path(cfg.out)
    train_set, test_set = load_dataset("digits"), load_dataset("digits:test")
    c, h, w = train_set.image_shape
    result: dict[str, Any] = {"teachers": []}
    members = []
    for k, arch in enumerate(cfg.teachers):
        run_dir = out / "teachers" / f"{k}-{arch}"
        if (run_dir / "model.safetensors").is_file():
            model, _ = load_teacher(f"run:{run_dir}", num_classes=10, in_chans=c)
            seconds = None
        else:
            torch.manual_seed(cfg.seed + k)
            model = create_model(arch, num_classes=train_set.num_classes, in_chans=c, image_size=(h, w))
            tcfg = TrainConfig(epochs=cfg.teacher_epochs, lr=3e-3, seed=cfg.seed + k, device="cpu")
            t0 = time.perf_counter()
            history = train(model, FreshAugmented(train_set, "cropflip", seed=cfg.seed + k), tcfg,
                            progress=progress, desc=f"teacher {k + 1}/{len(cfg.teachers)}")
            seconds = time.perf_counter() - t0
        probs = predict_probs(model, test_set, device=torch.device("cpu"))
        acc = _accuracy(probs, test_set.labels)
        if seconds is not None:
            save_run(run_dir, model, arch=arch, dataset=train_set, config=tcfg,
                     metrics={"test_acc": acc, "history": history})
        result["teachers"].append({"arch": arch, "run": str(run_dir), "test_acc": acc, "train_seconds": seconds})
        members.append(model)
    ens_probs = predict_probs(TeacherEnsemble(members), test_set, device=torch.device("cpu"))
    result["ensemble_test_acc"] = _accuracy(ens_probs, test_set.labels)

    store = reinforce(train_set, [f"run:{t['run']}" for t in result["teachers"]], out / "digits+",
                      ReinforceConfig(num_augs=cfg.num_augs, seed=cfg.seed, device="cpu"), progress=progress)
    result["store"] = {**store.summary(), "run_stats": store.run_stats}
    return result

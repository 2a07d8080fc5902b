"""``drkit demo``: the whole method end to end on bundled data (scikit-learn digits), offline.

1. Build a small teacher ensemble on the digits training split with :func:`drkit.teach.teach`
   (the strong recipe, a held-out split, a fitted temperature; reusable as
   ``--teacher ensemble:DIR``, each member as ``--teacher run:DIR``).
2. Reinforce the training split with the ensemble (default policy) into a store.
3. Train the same student twice at equal epochs and policy — ERM (fresh augmentations, hard
   labels) and DR (the store) — and compare them on the test split: accuracy, calibration and
   robustness (generated corruptions and shifts; mCE relative to ERM), with a report
   (``report/report.html``, ``drkit compare``).

Every step is cached in the output directory: rerunning skips what is done.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .data import ImageDataset, load_dataset
from .evaluate.evaluation import evaluate_run
from .evaluate.report import write_report
from .reinforcement.config import ReinforceConfig
from .reinforcement.engine import reinforce
from .teach import TEACH_TRAIN_DEFAULTS, TeachConfig, teach
from .training.loop import TrainConfig
from .training.runs import train_run

__all__ = ["DemoConfig", "run_demo"]

log = logging.getLogger(__name__)


@dataclass
class DemoConfig:
    out: str = "runs/demo"  # where runs and the store go
    teachers: tuple[str, ...] = ("smallcnn-32", "smallcnn-48", "smallcnn-64")  # ensemble members
    teacher_epochs: int = 30
    num_augs: int = 32
    student: str = "smallcnn-16"
    student_epochs: int = 30
    seed: int = 0
    robustness: bool = True  # evaluate the students under corruptions and shifts, write a report


def run_demo(config: DemoConfig | None = None, *, progress: bool = True) -> dict[str, Any]:
    """Run the demo; returns what it measured."""
    cfg = config or DemoConfig()
    out = Path(cfg.out)
    train_set, test_set = load_dataset("digits"), load_dataset("digits:test")
    result: dict[str, Any] = {"teachers": [], "students": {}}
    taught = teach("digits", cfg.teachers, out / "teachers", TeachConfig(robust_samples=0),
                   TrainConfig(**{**TEACH_TRAIN_DEFAULTS, "epochs": cfg.teacher_epochs, "lr": 3e-3, "seed": cfg.seed,
                                  "device": "cpu"}), progress=progress)
    for row in taught.members:
        result["teachers"].append({"arch": row["arch"], "run": row["run"], **row["eval"]})
    result["ensemble"] = {**taught.ensemble["eval"], "temperature": taught.temperature}

    store = reinforce(train_set, f"ensemble:{out / 'teachers'}", out / "digits+",
                      ReinforceConfig(num_augs=cfg.num_augs, seed=cfg.seed, device="cpu"), progress=progress)
    result["store"] = store.summary()

    student_cfg = TrainConfig(epochs=cfg.student_epochs, lr=3e-3, seed=cfg.seed, device="cpu")
    for mode in ("erm", "dr"):
        m = train_run(train_set, out / "students" / f"{mode}-{cfg.student}", arch=cfg.student, mode=mode,
                      store=out / "digits+", policy=store.policy_config.name, eval_data=test_set,
                      config=student_cfg, progress=progress)
        result["students"][mode] = {**m["final"], "train_seconds": m["train_seconds"],
                                    "run": str(out / "students" / f"{mode}-{cfg.student}")}
    if cfg.robustness:
        _evaluate_students(result, test_set, out, cfg.seed)
    return result


def _evaluate_students(result: dict[str, Any], test_set: ImageDataset, out: Path, seed: int) -> None:
    """Corruption/shift accuracy of each student (mCE relative to ERM) and the comparison report."""

    evals = {}
    for mode in ("erm", "dr"):
        s = result["students"][mode]
        evals[mode] = evaluate_run(s["run"], test_set, reference=evals.get("erm"), seed=seed, device="cpu")
        rob = evals[mode]["robustness"]
        s.update(top5=evals[mode]["metrics"]["top5"], corruption_accuracy=rob["mean_corruption_accuracy"],
                 mce=rob.get("mce", 1.0), rotation_accuracy=rob["mean_shift_accuracy"]["rotation"],
                 translation_accuracy=rob["mean_shift_accuracy"]["translation"])
    paths = write_report([evals["erm"], evals["dr"]], out / "report", reference=0,
                         title="drkit demo: ERM vs DR student on digits")
    result["report"] = str(paths["html"])

"""``drkit teach``: build a teacher ensemble the paper's way, before reinforcing with it.

The paper's first guideline (Faghri et al., ICCV 2023, §4.1) is "an ensemble of strong teachers
trained on large, diverse data". :func:`teach` trains (from scratch) or fine-tunes (from
``NAME@pretrained[:FILE]`` or ``--init`` weights) each member of a *diverse* ensemble with a strong
recipe — a long cosine schedule, label smoothing, ``randaugment+mixing`` and optionally AugMix for
robustness — on the training split minus a stratified held-out split, then fits the ensemble's
softmax temperature on that held-out split (minimum NLL) and writes ``DIR/ensemble.json``, which
``--teacher ensemble:DIR`` loads (temperature included; an explicit ``--temperature`` overrides it).

Layout of ``DIR``::

    ensemble.json          members, fitted temperature, held-out split, metrics (what reinforce prints)
    holdout.json           the held-out sample indices (never trained on; the temperature's data)
    members/K-ARCH/        one drkit training run per member (resumable; usable as run:DIR)
    members/K-ARCH/teach_eval.json   the member's held-out/test metrics and corruption accuracy
    teach.json             the whole report (per member and ensemble)

Every step is cached: rerunning the same command resumes the unfinished member and skips the rest.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .augment.policies import POLICIES
from .data import ImageDataset, fit_images, load_dataset, stratified_subset
from .errors import ConfigError
from .evaluate.calibration import ensemble_probs, fit_temperature
from .evaluate.robustness import robustness_eval
from .inference import best_device, image_batches
from .metrics import classification_metrics
from .models import ArchSpec, create_model
from .reinforcement.teachers import ENSEMBLE_FILE, EnsembleFile, TeacherEnsemble
from .training.loop import TrainConfig
from .training.runs import default_eval_data, load_run_model, train_run

__all__ = ["TeachConfig", "TeachResult", "teach", "fit_temperature", "teacher_summary"]

log = logging.getLogger(__name__)

HOLDOUT_FILE = "holdout.json"
MEMBER_EVAL = "teach_eval.json"


@dataclass
class TeachConfig:
    """What ``drkit teach`` does besides optimisation (that is :class:`~drkit.training.TrainConfig`)."""

    policy: str = field(default="randaugment+mixing", metadata={"help": "augmentation policy of every member"})
    augmix: bool = field(default=False, metadata={"help": "add torchvision's AugMix to each member's views (robustness)"})
    holdout: float = field(default=0.1, metadata={"help": "stratified fraction of the training split held out for the temperature"})
    robust_samples: int = field(default=2000, metadata={"help": "evaluation images for the corruption accuracy (evenly spaced; 0: all)"})
    image_size: int | None = field(default=None, metadata={"help": "side of the square training views (default: the images' size)"})

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ConfigError(f"unknown policy {self.policy!r}; choose one of {', '.join(POLICIES)}")
        if not 0 < self.holdout < 0.5:
            raise ConfigError(f"holdout is a fraction in (0, 0.5), got {self.holdout}")
        if self.robust_samples < 0:
            raise ConfigError(f"robust_samples must be >= 0, got {self.robust_samples}")


#: ``drkit teach``'s optimisation defaults: a longer schedule and label smoothing (the strong recipe).
TEACH_TRAIN_DEFAULTS: dict[str, Any] = {"epochs": 30, "label_smoothing": 0.1}


@dataclass
class TeachResult:
    """What :func:`teach` measured: one row per member and one for the ensemble."""

    root: Path
    temperature: float
    members: list[dict[str, Any]]  # arch, run, seconds, holdout/eval metrics, corruption_accuracy
    ensemble: dict[str, Any]  # the same for the ensemble at the fitted temperature
    eval_data: str | None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["root"] = str(self.root)
        return d


class _Subset(ImageDataset):
    """Some samples of an image dataset, as an :class:`ImageDataset`."""

    def __init__(self, dataset: ImageDataset, indices: np.ndarray, name: str) -> None:
        self.dataset, self.indices = dataset, np.asarray(indices, dtype=np.int64)
        self.labels, self.classes, self.name = dataset.labels[self.indices], dataset.classes, name
        self.variable_size = dataset.variable_size

    def image(self, index: int) -> torch.Tensor:
        return self.dataset.image(int(self.indices[index]))


def _member_dir_name(k: int, arch: str) -> str:
    return f"{k}-" + re.sub(r"[^A-Za-z0-9._-]+", "_", ArchSpec.parse(arch).name)


@torch.no_grad()
def _logits(model: nn.Module, dataset: ImageDataset, batch_size: int = 512) -> np.ndarray:
    """Logits ``(N, classes)`` (float64) of a classifier on the un-augmented images."""
    device = next(model.parameters()).device
    model.eval()
    out = []
    for _, x in image_batches(dataset, np.arange(len(dataset)), batch_size):
        out.append(model(x.to(device).float() / 255.0).double().cpu())
    return torch.cat(out).numpy()


def _scores(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    m = classification_metrics(probs, labels)
    return {k: float(m[k]) for k in ("top1", "nll", "ece")}


def _corruption_accuracy(model: nn.Module, dataset: ImageDataset, samples: int, seed: int) -> float | None:
    r = robustness_eval(model, dataset, shifts=(), max_samples=samples or None, seed=seed)
    return r["mean_corruption_accuracy"]


def teach(
    data: str | ImageDataset,
    archs: Sequence[str],
    out: str | os.PathLike[str],
    config: TeachConfig | None = None,
    train: TrainConfig | None = None,
    *,
    eval_data: str | ImageDataset | None = None,
    init: Sequence[str | None] | None = None,
    progress: bool = True,
    report: Callable[[str], None] | None = None,
) -> TeachResult:
    """Train or fine-tune one member per ``archs`` entry into ``out/members/``, fit the ensemble's
    temperature on a stratified held-out split of ``data`` and write ``out/ensemble.json``.

    Args:
        data: the training data (its held-out split is never trained on).
        archs: one architecture per member (repeat a name for members that differ by seed only;
            diverse architectures make a better ensemble). ``NAME@pretrained[:FILE]`` fine-tunes.
        out: the ensemble's folder (resumed when it holds the same members).
        config: what to train and measure; train: optimisation (member ``k`` uses seed
            ``train.seed + k``; default :data:`TEACH_TRAIN_DEFAULTS`).
        eval_data: also report every metric on this split (default ``DATA:test`` for bundled data).
        init: per member, a run directory or weights file to fine-tune from (or None).
        report: called with one line per step (the CLI prints them), e.g. progress and ETA.
    """
    cfg = config or TeachConfig()
    tcfg = train or TrainConfig(**TEACH_TRAIN_DEFAULTS)
    say = report or log.info
    if not archs:
        raise ConfigError("drkit teach needs at least one --arch (several diverse ones make a good ensemble)")
    init = list(init) if init is not None else [None] * len(archs)
    if len(init) != len(archs):
        raise ConfigError(f"{len(init)} --init values for {len(archs)} members: give one per --arch or none")
    for a in archs:
        ArchSpec.parse(a)
    root = Path(out)
    dataset = load_dataset(data)
    _check_archs(archs, dataset, cfg.image_size)  # every architecture takes the data, before any training
    eval_name = eval_data if eval_data is not None else default_eval_data(data)
    eval_set = load_dataset(eval_name) if eval_name is not None else None

    holdout = stratified_subset(dataset.labels, cfg.holdout, seed=tcfg.seed)
    keep = np.setdiff1d(np.arange(len(dataset)), holdout)
    root.mkdir(parents=True, exist_ok=True)
    _record_holdout(root, holdout, cfg.holdout, tcfg.seed, dataset.name)
    held = _Subset(dataset, holdout, f"{dataset.name}[held-out {len(holdout)}]")
    say(f"teach: {len(archs)} members on {dataset.name}: {len(keep):,} training images, {len(holdout):,} held out "
        f"(seed {tcfg.seed}); {tcfg.epochs} epochs each, policy {cfg.policy}"
        + (" + AugMix" if cfg.augmix else "") + f", label smoothing {tcfg.label_smoothing}")

    members: list[dict[str, Any]] = []
    models: list[nn.Module] = []
    t_start, epochs_done = time.perf_counter(), 0
    for k, arch in enumerate(archs):
        run_dir = root / "members" / _member_dir_name(k, arch)
        say(f"teach: member {k + 1}/{len(archs)} {arch} -> {run_dir}")
        m = train_run(dataset, run_dir, arch=arch, mode="erm", policy=cfg.policy, eval_data=eval_set,
                      init=init[k], image_size=cfg.image_size, augmix=cfg.augmix, indices=keep,
                      config=TrainConfig(**{**asdict(tcfg), "seed": tcfg.seed + k}), progress=progress)
        model, run_cfg = load_run_model(run_dir)
        model.to(torch.device(tcfg.device) if tcfg.device else best_device())
        row = _evaluate_member(model, run_dir, arch, m, held, eval_set, run_cfg, cfg, tcfg.seed)
        members.append(row)
        models.append(model)
        epochs_done += tcfg.epochs
        elapsed = time.perf_counter() - t_start
        left = len(archs) - k - 1
        eta = f"; about {elapsed / epochs_done * tcfg.epochs * left / 60:.0f} min left (from this run's pace)" if left else ""
        say(f"teach: member {k + 1}/{len(archs)} {arch}: held-out top-1 {row['holdout']['top1']:.2%}, "
            f"trained in {row['train_seconds']:.0f} s{eta}")

    size = tuple(json.loads((root / "members" / _member_dir_name(0, archs[0]) / "config.json").read_text())["image_size"])
    held_fit = fit_images(held, size)
    held_logits = [_logits(m, held_fit) for m in models]
    temperature = fit_temperature(held_logits, held.labels)
    ensemble = TeacherEnsemble(models, temperature=temperature)
    ens: dict[str, Any] = {"arch": "ensemble", "run": str(root), "train_seconds": sum(r["train_seconds"] for r in members),
                           "temperature": temperature,
                           "holdout": _scores(ensemble_probs(held_logits, temperature), held.labels),
                           "holdout_t1": _scores(ensemble_probs(held_logits, 1.0), held.labels)}
    if eval_set is not None:
        eval_fit = fit_images(eval_set, size)
        ens["eval"] = _scores(ensemble_probs([_logits(m, eval_fit) for m in models], temperature), eval_set.labels)
    robust_set = fit_images(eval_set, size) if eval_set is not None else held_fit
    ens["corruption_accuracy"] = _corruption_accuracy(ensemble, robust_set, cfg.robust_samples, tcfg.seed)
    say(f"teach: ensemble temperature {temperature:.3f} (min NLL on the held-out split): held-out top-1 "
        f"{ens['holdout']['top1']:.2%}, ECE {ens['holdout']['ece']:.3f}")

    result = TeachResult(root, temperature, members, ens, eval_set.name if eval_set is not None else None)
    EnsembleFile(members=[str(Path("members") / _member_dir_name(k, a)) for k, a in enumerate(archs)],
                 temperature=temperature, dataset=dataset.name,
                 holdout={"fraction": cfg.holdout, "seed": tcfg.seed, "size": int(len(holdout)), "file": HOLDOUT_FILE},
                 metrics={"members": members, "ensemble": ens, "eval_data": result.eval_data}).write(root)
    (root / "teach.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return result


def _check_archs(archs: Sequence[str], dataset: ImageDataset, image_size: int | None) -> None:
    c, h, w = dataset.image_shape
    size = (image_size, image_size) if image_size else (h, w)
    for arch in archs:  # pretrained weights are not fetched for this check: the shapes are the same
        create_model(ArchSpec.parse(arch).name, num_classes=dataset.num_classes, in_chans=c, image_size=size)


def _record_holdout(root: Path, holdout: np.ndarray, fraction: float, seed: int, name: str) -> None:
    path = root / HOLDOUT_FILE
    record = {"dataset": name, "fraction": fraction, "seed": seed, "indices": holdout.tolist()}
    if path.is_file():
        old = json.loads(path.read_text())
        if old != record:
            raise ConfigError(f"{root} holds members trained with another held-out split (dataset, fraction or seed "
                              "differ): choose another --out or delete it")
        return
    path.write_text(json.dumps(record) + "\n")


def _evaluate_member(model: nn.Module, run_dir: Path, arch: str, metrics: dict[str, Any], held: ImageDataset,
                     eval_set: ImageDataset | None, run_cfg: dict[str, Any], cfg: TeachConfig, seed: int) -> dict[str, Any]:
    """A member's held-out/eval metrics and corruption accuracy, cached in its run directory."""
    key = {"eval_data": eval_set.name if eval_set is not None else None, "robust_samples": cfg.robust_samples,
           "holdout": len(held)}
    cache = run_dir / MEMBER_EVAL
    if cache.is_file():
        row = json.loads(cache.read_text())
        if row.get("key") == key:
            return row
    size = tuple(run_cfg["image_size"])
    held_fit = fit_images(held, size)
    row: dict[str, Any] = {"arch": arch, "run": str(run_dir), "train_seconds": metrics["train_seconds"],
                           "holdout": _scores(_softmax(_logits(model, held_fit)), held.labels), "key": key}
    if eval_set is not None:
        eval_fit = fit_images(eval_set, size)
        row["eval"] = _scores(_softmax(_logits(model, eval_fit)), eval_set.labels)
    robust_set = fit_images(eval_set, size) if eval_set is not None else held_fit
    row["corruption_accuracy"] = _corruption_accuracy(model, robust_set, cfg.robust_samples, seed)
    cache.write_text(json.dumps(row, indent=2) + "\n")
    return row


def _softmax(z: np.ndarray) -> np.ndarray:
    return ensemble_probs([z], 1.0)


def teacher_summary(specs: Sequence[str | nn.Module]) -> list[str]:
    """One line per teacher spec: what drkit knows of its quality (``drkit reinforce`` prints it
    before it spends hours on the teacher): an ensemble's held-out accuracy/ECE and temperature
    from ``drkit teach``, a run's last evaluation, or "not evaluated"."""
    lines = []
    for spec in specs:
        if not isinstance(spec, str):
            lines.append(f"{type(spec).__name__} (a module from Python): not evaluated")
            continue
        kind, _, arg = spec.partition(":")
        if kind == "ensemble" and (Path(arg) / ENSEMBLE_FILE).is_file():
            ens = EnsembleFile.read(arg)
            e = ens.metrics.get("ensemble", {})
            if "holdout" in e:
                h = e["holdout"]
                test = (f"; {ens.metrics.get('eval_data')}: top-1 {e['eval']['top1']:.2%}, ECE {e['eval']['ece']:.3f}"
                        if "eval" in e else "")
                corr = e.get("corruption_accuracy")
                lines.append(f"{spec}: {len(ens.members)} members, T={ens.temperature:.3f}; held-out top-1 "
                             f"{h['top1']:.2%}, NLL {h['nll']:.3f}, ECE {h['ece']:.3f}{test}"
                             + (f"; corruption accuracy {corr:.2%}" if corr is not None else ""))
                continue
            lines.append(f"{spec}: {len(ens.members)} members, T={ens.temperature:.3f}: not evaluated")
        elif kind == "run" and (Path(arg) / "metrics.json").is_file():
            m = json.loads((Path(arg) / "metrics.json").read_text())
            f = m.get("final")
            where = m.get("config", {}).get("eval_data")
            lines.append(f"{spec}: {where}: top-1 {f['top1']:.2%}, ECE {f['ece']:.3f} (its training run's evaluation)"
                         if f and where else f"{spec}: not evaluated")
        else:
            lines.append(f"{spec}: not evaluated")
    return lines

"""Evaluate a trained run: accuracy, calibration, robustness, OOD detection and certification.

``evaluate_run(RUN, DATA)`` is what ``drkit eval RUN --data DATA`` prints and ``drkit compare``
tabulates. It loads the run's model (:func:`drkit.training.runs.load_run_model`), checks that the data fits it
(channels, image size, classes) and returns one JSON-able dict:

- ``metrics``: top-1, top-5, NLL, Brier, ECE, adaptive ECE (:mod:`drkit.metrics`);
- ``per_class_accuracy`` and ``reliability`` (the reliability diagram's bins);
- ``teacher`` (with a store or teachers): the teacher's own metrics on the data and the
  student's top-1 agreement with it;
- ``robustness``: accuracy under generated corruptions and shifts (:mod:`drkit.evaluate.robustness`), and
  mCE against a ``reference`` run;
- ``ood`` (with ``ood_data``): AUROC of max-probability and entropy (:mod:`drkit.evaluate.ood`);
- ``certify`` (with a :class:`~drkit.evaluate.certify.CertifyConfig`): randomized-smoothing certified
  accuracy (:mod:`drkit.evaluate.certify`).

``docs/evaluation.md`` explains every number.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch
from torch import nn

from ..data import ImageDataset, fit_images, load_dataset
from ..errors import ConfigError, DataError
from ..inference import best_device, image_batches, predict_batches
from ..metrics import agreement, ece, evaluation_metrics, per_class_accuracy, reliability
from ..reinforcement.store import Store
from ..reinforcement.teachers import TeacherEnsemble, expand_teachers, load_teacher, store_teachers
from ..training.runs import load_run_model
from .calibration import temperature_scaling
from .certify import CertifyConfig, certify_dataset
from .corruptions import BACKENDS, CORRUPTIONS, SHIFTS
from .ood import adapt_images, ood_metrics
from .robustness import evenly_spaced, mce, robustness_eval

__all__ = ["EvalConfig", "Evaluation", "check_run_data", "evaluate_model", "evaluate_run", "load_evaluation", "predict", "teacher_module",
           "to_jsonable"]

log = logging.getLogger(__name__)


def to_jsonable(value: Any) -> Any:
    """Numpy scalars/arrays to Python, non-finite floats to ``None`` (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def check_run_data(config: dict[str, Any], dataset: ImageDataset, *, where: str = "the run") -> None:
    """Raise :class:`DataError` unless ``dataset`` has the channels, image size and number of
    classes the run was trained with. A variable-size dataset (an image folder) may have any image
    size: evaluation fits its images to the run's (:func:`drkit.data.fit_images`)."""
    c, h, w = dataset.image_shape
    want_c, (want_h, want_w), want_k = config["in_chans"], config["image_size"], config["num_classes"]
    trained_on = config.get("dataset", "its training data")
    if c != want_c:
        raise DataError(f"{where} takes {want_c}-channel images (trained on {trained_on}) but {dataset.name} has "
                        f"{c} channels; evaluate it on data like {trained_on}, or convert the images")
    if (h, w) != (want_h, want_w) and not dataset.variable_size:
        raise DataError(f"{where} takes {want_h}×{want_w} images (trained on {trained_on}) but {dataset.name} "
                        f"has {h}×{w}; evaluate it on data of that size (resize the images first)")
    if dataset.num_classes != want_k:
        raise DataError(f"{where} predicts {want_k} classes (trained on {trained_on}) but {dataset.name} has "
                        f"{dataset.num_classes}; its labels would not line up — evaluate on a split of {trained_on}")


def predict(model: nn.Module, dataset: ImageDataset, device: torch.device, batch_size: int = 512,
            shape: tuple[int, int, int] | None = None) -> np.ndarray:
    """Class probabilities ``(N, classes)`` of ``model`` over ``dataset``, images adapted to ``shape`` if given."""
    idx = np.arange(len(dataset))
    batches = (x if shape is None else adapt_images(x, shape) for _, x in image_batches(dataset, idx, batch_size))
    return predict_batches(model, batches, device)


def teacher_module(store: str | os.PathLike[str] | None, teacher: Sequence[str | nn.Module] | None,
                   dataset: ImageDataset, *, trust_store_teachers: bool = False) -> tuple[nn.Module, list[str]]:
    """``teacher``, or the store's teacher ensemble (from the specs in its manifest, only with
    ``trust_store_teachers``: :func:`drkit.reinforcement.teachers.store_teachers`): a :class:`TeacherEnsemble`,
    whose output :func:`predict` takes as probabilities."""
    temperature, specs = 1.0, list(teacher or [])
    if store is not None and not specs:

        specs, temperature = store_teachers(Store.open(store, verify=False).settings, where=str(store),  # type: ignore[assignment]
                                            trust=trust_store_teachers)
    else:
        specs, temperature = expand_teachers(specs, None)  # type: ignore[assignment]
    members = [load_teacher(s, num_classes=dataset.num_classes, in_chans=dataset.image_shape[0],
                            image_size=tuple(dataset.image_shape[1:]))[0] for s in specs]
    names = [s if isinstance(s, str) else type(s).__name__ for s in specs]
    return TeacherEnsemble(members, temperature=temperature), names


class Evaluation(TypedDict, total=False):
    """What :func:`evaluate_model` / :func:`evaluate_run` return and ``drkit eval --json`` prints: a
    JSON document (saved, loaded by :func:`load_evaluation`, tabulated by ``drkit compare``), typed."""

    data: str
    num_samples: int
    image_shape: list[int]
    classes: list[str]
    metrics: dict[str, float]  # top1, top5, nll, brier, ece, adaptive_ece
    per_class_accuracy: dict[str, float]
    reliability: dict[str, list[float]]  # the reliability diagram's bins
    teacher: dict[str, Any]  # with a store or teachers: its metrics and the student's agreement
    robustness: dict[str, Any]  # corruptions, shifts, clean_top1, mCE against a reference
    ood: dict[str, Any]  # with ood_data: AUROC of max-probability and entropy
    certify: dict[str, Any]  # with EvalConfig.certify: certified accuracy per radius
    calibration: dict[str, Any]  # with calibration_data: fitted temperature, ECE/NLL before and after
    run: dict[str, Any]  # evaluate_run: path, label, config of the run
    label: str


@dataclass
class EvalConfig:
    """How a model is evaluated (``drkit eval``'s options); the data, store, teachers, reference
    and OOD data are arguments of :func:`evaluate_model`."""

    corruptions: bool | Sequence[str] = True  # all generated corruptions, these, or none
    shifts: bool | Sequence[str] = True  # rotation / translation sweeps
    robustness_samples: int | None = None  # evenly spaced test images for robustness (None: all)
    certify: CertifyConfig | None = None  # randomized-smoothing certification (off by default)
    seed: int = 0  # seed of the corruptions' randomness
    batch_size: int = 512
    device: str | torch.device | None = None  # default: cuda, mps, then cpu
    backend: str = "torch"  # corruption backend: torch (any size) or imagecorruptions (RGB >= 32 px)
    trust_store_teachers: bool = False  # teacher metrics from the teachers a store names (may run code)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.robustness_samples is not None and self.robustness_samples < 1:
            raise ConfigError(f"robustness_samples must be >= 1, got {self.robustness_samples}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")


def _eval_config(config: EvalConfig | None, overrides: dict[str, Any]) -> EvalConfig:
    try:
        return dataclasses.replace(config or EvalConfig(), **overrides)
    except TypeError as e:
        raise ConfigError(f"unknown evaluation setting: {e}") from e


def evaluate_model(
    model: nn.Module,
    data: str | ImageDataset,
    config: EvalConfig | None = None,
    *,
    store: str | os.PathLike[str] | None = None,
    teacher: Sequence[str | nn.Module] | None = None,
    reference: Mapping[str, Any] | None = None,
    ood_data: str | ImageDataset | None = None,
    calibration_data: str | ImageDataset | None = None,
    progress: bool = False,
    **overrides: Any,
) -> Evaluation:
    """Evaluate any classifier of float images in ``[0, 1]`` as ``config`` says (see
    :func:`evaluate_run`); ``overrides`` set :class:`EvalConfig` fields (drkit 0.1's keywords).
    ``calibration_data``: a held-out split (never the evaluation data) to fit a softmax temperature
    on; ``calibration`` then reports ECE and NLL before and after it — for ERM and DR alike."""
    cfg = _eval_config(config, overrides)
    corruptions, shifts, robustness_samples, certify = cfg.corruptions, cfg.shifts, cfg.robustness_samples, cfg.certify
    seed, batch_size, device, backend = cfg.seed, cfg.batch_size, cfg.device, cfg.backend
    dataset = load_dataset(data)
    dev = torch.device(device) if device is not None else best_device()
    model = model.eval().to(dev)
    probs = predict(model, dataset, dev, batch_size)
    labels = dataset.labels
    out: dict[str, Any] = {
        "data": dataset.name, "num_samples": len(dataset), "image_shape": list(dataset.image_shape),
        "classes": list(dataset.classes), "metrics": evaluation_metrics(probs, labels),
        "per_class_accuracy": dict(zip(dataset.classes, per_class_accuracy(probs, labels).tolist(), strict=True)),
        "reliability": reliability(probs, labels),
    }

    if store is not None or teacher:
        t_model, names = teacher_module(store, teacher, dataset, trust_store_teachers=cfg.trust_store_teachers)
        t_probs = predict(t_model.to(dev), dataset, dev, batch_size)
        out["teacher"] = {
            "store": str(store) if store is not None else None, "members": names,
            "agreement": agreement(probs, t_probs),
            "total_variation": float(0.5 * np.abs(probs - t_probs).sum(1).mean()),
            "top1": float((t_probs.argmax(1) == labels).mean()), "ece": ece(t_probs, labels),
        }

    corr = list(CORRUPTIONS) if corruptions is True else list(corruptions or [])
    shf = list(SHIFTS) if shifts is True else list(shifts or [])
    if corr or shf:
        rob = robustness_eval(model, dataset, corruptions=corr, shifts=shf, max_samples=robustness_samples,
                              seed=seed, batch_size=batch_size, device=dev, backend=backend, progress=progress)
        sub = evenly_spaced(len(dataset), robustness_samples)
        rob["clean_top1"] = float((probs[sub].argmax(1) == labels[sub]).mean())
        if reference is not None and corr:
            ref_rob = reference.get("robustness")
            if not ref_rob or not ref_rob.get("corruptions"):
                raise ConfigError("the reference evaluation has no corruption results: evaluate it with "
                                  "corruptions on, with the same data, seed and sample count")
            rob["reference"] = reference.get("label") or reference.get("run", {}).get("path")
            rob.update(mce(rob, ref_rob, clean_error=1 - rob["clean_top1"],
                           reference_clean_error=1 - ref_rob["clean_top1"]))
        out["robustness"] = rob

    if ood_data is not None:
        ood_set = load_dataset(ood_data)
        shape = dataset.image_shape
        if ood_set.image_shape != shape:
            log.info("OOD data %s adapted from %s to %s", ood_set.name, ood_set.image_shape, shape)
        out["ood"] = {"data": ood_set.name, "num_samples": len(ood_set),
                      "adapted_from": list(ood_set.image_shape) if ood_set.image_shape != shape else None,
                      **ood_metrics(probs, predict(model, ood_set, dev, batch_size, shape))}

    if calibration_data is not None:
        held = load_dataset(calibration_data)
        if held.image_shape != dataset.image_shape or held.num_classes != dataset.num_classes:
            raise DataError(f"calibration data {held.name} ({held.image_shape}, {held.num_classes} classes) does not "
                            f"fit the evaluation data ({dataset.image_shape}, {dataset.num_classes} classes)")
        if held.name == dataset.name:
            raise ConfigError(f"the calibration data is the evaluation data ({held.name}): fit the temperature on a "
                              "held-out split, or the scaled ECE is optimistic")
        out["calibration"] = {"data": held.name, "num_samples": len(held),
                              **temperature_scaling(probs, labels, predict(model, held, dev, batch_size), held.labels)}

    if certify is not None:
        out["certify"] = certify_dataset(model, dataset, certify, progress=progress)
    return to_jsonable(out)  # type: ignore[no-any-return]


def _run_label(cfg: dict[str, Any], path: Path) -> str:
    return f"{cfg.get('arch', '?')} {cfg.get('mode', '?')} ({path.name})"


def evaluate_run(
    run_dir: str | os.PathLike[str],
    data: str | ImageDataset | None = None,
    config: EvalConfig | None = None,
    *,
    reference: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    store: str | os.PathLike[str] | None = None,
    teacher: Sequence[str | nn.Module] | None = None,
    ood_data: str | ImageDataset | None = None,
    calibration_data: str | ImageDataset | None = None,
    progress: bool = False,
    **overrides: Any,
) -> Evaluation:
    """Evaluate the finished run in ``run_dir`` on ``data``.

    Args:
        run_dir: a run written by ``drkit train`` (``config.json`` + ``model.safetensors``).
        data: evaluation data (name or dataset); default: the run's own ``eval_data``.
        reference: a run directory, or an earlier result of this function, to compute mCE
            against; a directory is evaluated with the same corruption settings.
        config: how to evaluate (:class:`EvalConfig`); ``overrides`` set its fields.
        store, teacher, ood_data, calibration_data, progress: as for :func:`evaluate_model`
            (``calibration_data`` is fitted to the run's input size as ``data`` is).

    Returns:
        The :class:`Evaluation` (module docstring) with ``run`` (path, label, config) added.

    Raises:
        ConfigError: ``run_dir`` is not a finished run.
        DataError: the data does not fit the run (channels, image size, classes).
    """

    root = Path(run_dir)
    if not (root / "config.json").is_file() or not (root / "model.safetensors").is_file():
        raise ConfigError(f"{root} is not a finished drkit run (needs config.json and model.safetensors); "
                          "train one with `drkit train`, or let an interrupted one finish by rerunning it")
    model, cfg = load_run_model(root)
    if data is None:
        data = cfg.get("eval_data")
        if not data:
            raise ConfigError(f"{root} has no evaluation data in its config; pass data (--data)")
    dataset = load_dataset(data)
    check_run_data(cfg, dataset, where=f"run {root}")
    dataset = fit_images(dataset, tuple(cfg["image_size"]))
    cfg_eval = _eval_config(config, overrides)
    if reference is not None and not isinstance(reference, Mapping):  # the same corruptions, nothing else
        ref_cfg = dataclasses.replace(cfg_eval, certify=None, trust_store_teachers=False)
        reference = evaluate_run(reference, dataset, ref_cfg, progress=progress)
    held = None
    if calibration_data is not None:
        held = load_dataset(calibration_data)
        check_run_data(cfg, held, where=f"run {root}")
        held = fit_images(held, tuple(cfg["image_size"]))
    result = evaluate_model(model, dataset, cfg_eval, store=store, teacher=teacher, reference=reference,
                            ood_data=ood_data, calibration_data=held, progress=progress)
    result["run"] = {"path": str(root), "label": _run_label(cfg, root), "config": cfg}
    result["label"] = result["run"]["label"]
    return result


def load_evaluation(path: str | os.PathLike[str]) -> Evaluation:
    """A result saved by ``drkit eval --out FILE`` (JSON)."""
    p = Path(path)
    try:
        result = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read evaluation {p}: {e}") from e
    if not isinstance(result, dict) or "metrics" not in result:
        raise ConfigError(f"{p} is not a drkit evaluation (write one with `drkit eval RUN --out FILE`)")
    return result

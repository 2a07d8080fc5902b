"""Evaluate a trained run: accuracy, calibration, robustness, OOD detection and certification.

``evaluate_run(RUN, DATA)`` is what ``drkit eval RUN --data DATA`` prints and ``drkit compare``
tabulates. It loads the run's model (``drkit.runs.load_run_model``), checks that the data fits it
(channels, image size, classes) and returns one JSON-able dict:

- ``metrics``: top-1, top-5, NLL, Brier, ECE, adaptive ECE (:mod:`drkit.metrics`);
- ``per_class_accuracy`` and ``reliability`` (the reliability diagram's bins);
- ``teacher`` (with a store or teachers): the teacher's own metrics on the data and the
  student's top-1 agreement with it;
- ``robustness``: accuracy under generated corruptions and shifts (:mod:`drkit.robustness`), and
  mCE against a ``reference`` run;
- ``ood`` (with ``ood_data``): AUROC of max-probability and entropy (:mod:`drkit.ood`);
- ``certify`` (with a :class:`~drkit.certify.CertifyConfig`): randomized-smoothing certified
  accuracy (:mod:`drkit.certify`).

``docs/evaluation.md`` explains every number.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .certify import CertifyConfig, certify_dataset
from .corruptions import CORRUPTIONS, SHIFTS
from .data import ImageDataset, fit_images, load_dataset
from .errors import ConfigError, DataError
from .metrics import agreement, ece, evaluation_metrics, per_class_accuracy, reliability
from .ood import adapt_images, ood_metrics
from .robustness import evenly_spaced, image_batches, mce, predict_batches, robustness_eval
from .teachers import TeacherEnsemble, best_device, expand_teachers, load_teacher, store_teachers

__all__ = ["check_run_data", "evaluate_model", "evaluate_run", "load_evaluation", "predict", "teacher_module",
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
    ``trust_store_teachers``: :func:`drkit.teachers.store_teachers`): a :class:`TeacherEnsemble`,
    whose output :func:`predict` takes as probabilities."""
    temperature, specs = 1.0, list(teacher or [])
    if store is not None and not specs:
        from .store import Store

        specs, temperature = store_teachers(Store.open(store, verify=False).settings, where=str(store),  # type: ignore[assignment]
                                            trust=trust_store_teachers)
    else:
        specs, temperature = expand_teachers(specs, None)  # type: ignore[assignment]
    members = [load_teacher(s, num_classes=dataset.num_classes, in_chans=dataset.image_shape[0],
                            image_size=tuple(dataset.image_shape[1:]))[0] for s in specs]
    names = [s if isinstance(s, str) else type(s).__name__ for s in specs]
    return TeacherEnsemble(members, temperature=temperature), names


def evaluate_model(
    model: nn.Module,
    data: str | ImageDataset,
    *,
    store: str | os.PathLike[str] | None = None,
    teacher: Sequence[str | nn.Module] | None = None,
    corruptions: bool | Sequence[str] = True,
    shifts: bool | Sequence[str] = True,
    robustness_samples: int | None = None,
    reference: dict[str, Any] | None = None,
    ood_data: str | ImageDataset | None = None,
    certify: CertifyConfig | None = None,
    seed: int = 0,
    batch_size: int = 512,
    device: str | torch.device | None = None,
    backend: str = "torch",
    progress: bool = False,
    trust_store_teachers: bool = False,
) -> dict[str, Any]:
    """Evaluate any classifier of float images in ``[0, 1]`` (see :func:`evaluate_run`)."""
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
        t_model, names = teacher_module(store, teacher, dataset, trust_store_teachers=trust_store_teachers)
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

    if certify is not None:
        out["certify"] = certify_dataset(model, dataset, certify, progress=progress)
    return to_jsonable(out)


def _run_label(cfg: dict[str, Any], path: Path) -> str:
    return f"{cfg.get('arch', '?')} {cfg.get('mode', '?')} ({path.name})"


def evaluate_run(
    run_dir: str | os.PathLike[str],
    data: str | ImageDataset | None = None,
    *,
    reference: str | os.PathLike[str] | dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Evaluate the finished run in ``run_dir`` on ``data``.

    Args:
        run_dir: a run written by ``drkit train`` (``config.json`` + ``model.safetensors``).
        data: evaluation data (name or dataset); default: the run's own ``eval_data``.
        reference: a run directory, or an earlier result of this function, to compute mCE
            against; a directory is evaluated with the same corruption settings.
        **kwargs: ``store``, ``teacher``, ``corruptions``, ``shifts``, ``robustness_samples``,
            ``ood_data``, ``certify``, ``seed``, ``batch_size``, ``device``, ``backend``,
            ``progress``, ``trust_store_teachers`` — see :func:`evaluate_model`.

    Returns:
        A JSON-able dict (module docstring) with ``run`` (path, label, config) added.

    Raises:
        ConfigError: ``run_dir`` is not a finished run.
        DataError: the data does not fit the run (channels, image size, classes).
    """
    from .runs import load_run_model

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
    if reference is not None and not isinstance(reference, dict):
        ref_kwargs = {k: v for k, v in kwargs.items()
                      if k not in ("store", "teacher", "ood_data", "certify", "trust_store_teachers")}
        reference = evaluate_run(reference, dataset, **ref_kwargs)
    result = evaluate_model(model, dataset, reference=reference, **kwargs)
    result["run"] = {"path": str(root), "label": _run_label(cfg, root), "config": cfg}
    result["label"] = result["run"]["label"]
    return result


def load_evaluation(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A result saved by ``drkit eval --out FILE`` (JSON)."""
    p = Path(path)
    try:
        result = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read evaluation {p}: {e}") from e
    if not isinstance(result, dict) or "metrics" not in result:
        raise ConfigError(f"{p} is not a drkit evaluation (write one with `drkit eval RUN --out FILE`)")
    return result

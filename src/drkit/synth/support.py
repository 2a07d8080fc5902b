"""The support set: generated images, their prompts and targets, written as an image folder.

On disk (``write_support_set``)::

    OUT/000_T-shirt_top/s007_03.png     one folder per class of the *real* dataset, named
    OUT/001_Trouser/...                 "{class id:03d}_{name}" so that sorted folder names are
    ...                                 the class ids (empty folders kept): ``imagefolder:OUT``
    OUT/manifest.json                   and ``drkit reinforce imagefolder:OUT`` label every image
                                        with the real class id of its prompt's first class.

``manifest.json`` lists every image: file, label, prompt text, class ids, domain, seed, step and
the step's reward. A prompt that mixes three classes is not honestly labelled by its first class:
reinforce the folder with a teacher (``drkit reinforce imagefolder:OUT``) and train on real +
synthetic stores together (:func:`support_training_set`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset
from torchvision.io import write_png

from ..data import ArrayDataset, ImageDataset, load_dataset
from ..errors import DataError
from ..training.reinforced_dataset import ReinforcedDataset
from .prompts import Prompt

__all__ = ["LABEL_MODES", "LabelledImages", "SupportSet", "SupportSetDataset", "class_folder", "write_support_set",
           "load_support_set", "support_training_set", "as_array_dataset"]

LABEL_MODES = ("first", "prompt", "teacher")
MANIFEST = "manifest.json"
FORMAT = "drkit-support-set"


def class_folder(class_id: int, name: str) -> str:
    """``class_folder(0, "T-shirt/top") -> "000_T-shirt_top"``: sorts by id, safe on every filesystem."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "class"
    return f"{class_id:03d}_{safe}"


def as_array_dataset(dataset: ImageDataset) -> ArrayDataset:
    """``dataset`` held in memory as one array (limited-data regime: small by assumption)."""
    if isinstance(dataset, ArrayDataset):
        return dataset
    images = np.stack([dataset.image(i).numpy() for i in range(len(dataset))])
    return ArrayDataset(images, dataset.labels, classes=dataset.classes, name=dataset.name)


class LabelledImages(Dataset):
    """In-memory ``(image float (C, H, W) in [0, 1], target (classes,), label)`` items: what
    :class:`drkit.training.Trainer` trains on, real (one-hot) and synthetic alike."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor) -> None:
        if not (len(images) == len(targets) == len(labels)) or images.dtype != torch.uint8:
            raise DataError(f"need uint8 images and as many targets and labels, got {images.dtype} "
                            f"{len(images)}/{len(targets)}/{len(labels)}")
        self.images, self.targets, self.labels = images, targets.float(), labels.long()

    @classmethod
    def from_dataset(cls, dataset: ImageDataset) -> LabelledImages:
        data = as_array_dataset(dataset)
        labels = torch.as_tensor(data.labels)
        return cls(torch.from_numpy(data.images), torch.nn.functional.one_hot(labels, data.num_classes), labels)

    @classmethod
    def concat(cls, parts: Sequence[LabelledImages]) -> LabelledImages:
        return cls(*(torch.cat([getattr(p, k) for p in parts]) for k in ("images", "targets", "labels")))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self.images[i].float() / 255.0, self.targets[i], int(self.labels[i])


class SupportSet:
    """The growing support set of one episode: images, their targets and provenance."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.images: list[torch.Tensor] = []
        self.targets: list[np.ndarray] = []
        self.records: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self.records)

    def add(self, images: torch.Tensor, prompt: Prompt, targets: np.ndarray, *, text: str, seed: int, step: int) -> None:
        prompt.check(None, self.num_classes)
        if targets.shape != (len(images), self.num_classes):
            raise DataError(f"targets {targets.shape} do not fit {len(images)} images of {self.num_classes} classes")
        for k, img in enumerate(images):
            self.images.append(img)
            self.targets.append(np.asarray(targets[k], dtype=np.float32))
            self.records.append({"label": prompt.label, "prompt": text, "classes": list(prompt.classes),
                                 "domain": prompt.domain, "seed": seed, "index": k, "step": step, "reward": None})

    def set_reward(self, step: int, reward: float) -> None:
        for r in self.records:
            if r["step"] == step:
                r["reward"] = reward

    @property
    def labels(self) -> np.ndarray:
        return np.asarray([r["label"] for r in self.records], dtype=np.int64)

    def labelled(self) -> LabelledImages:
        if not self.records:
            return LabelledImages(torch.zeros(0, 1, 1, 1, dtype=torch.uint8), torch.zeros(0, self.num_classes),
                                  torch.zeros(0, dtype=torch.long))
        return LabelledImages(torch.stack(self.images), torch.from_numpy(np.stack(self.targets)),
                              torch.from_numpy(self.labels))


def write_support_set(root: str | os.PathLike[str], support: SupportSet, class_names: Sequence[str], *,
                      info: dict[str, Any] | None = None) -> Path:
    """Write ``support`` as an image folder with ``manifest.json`` (module docstring); returns ``root``."""

    out = Path(root)
    if out.exists() and any(p.is_dir() for p in out.iterdir()):
        raise DataError(f"{out} already holds class folders; write a support set into a new directory")
    if len(class_names) != support.num_classes:
        raise DataError(f"{len(class_names)} class names for a support set of {support.num_classes} classes")
    folders = [class_folder(i, n) for i, n in enumerate(class_names)]
    for f in folders:
        (out / f).mkdir(parents=True, exist_ok=True)  # empty ones too: folder i must be class i
    items = []
    for img, rec in zip(support.images, support.records, strict=True):
        file = f"{folders[rec['label']]}/s{rec['step']:03d}_{rec['index']:02d}.png"
        write_png(img.contiguous(), str(out / file))
        items.append({"file": file, **rec})
    manifest = {"format": FORMAT, "version": 1, "class_names": list(class_names), "folders": folders,
                "images": items, **(info or {})}
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(out / MANIFEST)
    return out


class SupportSetDataset(ArrayDataset):
    """A written support set, labels = real class ids; ``prompt_targets`` holds each image's
    prompt mixture (0.6/0.2/0.2) and ``manifest`` the provenance."""

    prompt_targets: np.ndarray
    manifest: dict[str, Any]


def load_support_set(root: str | os.PathLike[str], *, classes: Sequence[str] | None = None) -> SupportSetDataset:
    """Read a support set; with ``classes`` (the real dataset's), check they are the same."""
    out = Path(root)
    if not (out / MANIFEST).is_file():
        raise DataError(f"{out} is not a support set (no {MANIFEST}); make one with `drkit synth run`")
    manifest = json.loads((out / MANIFEST).read_text())
    if manifest.get("format") != FORMAT:
        raise DataError(f"{out / MANIFEST} is not a drkit support-set manifest")
    names = manifest["class_names"]
    if classes is not None and list(classes) != names:
        raise DataError(f"support set {out} was made for classes {names}, not {list(classes)}")
    if not manifest["images"]:
        raise DataError(f"support set {out} holds no images")
    folder = load_dataset(f"imagefolder:{out}")
    by_file = {str(f.relative_to(out)): i for i, f in enumerate(folder.files)}  # type: ignore[attr-defined]
    images, labels, mixes = [], [], []
    for item in manifest["images"]:
        if item["file"] not in by_file:
            raise DataError(f"support set {out}: {item['file']} is listed in the manifest but missing")
        i = by_file[item["file"]]
        if int(folder.labels[i]) != item["label"]:
            raise DataError(f"support set {out}: {item['file']} lies in class folder {folder.labels[i]}, "
                            f"the manifest says {item['label']}")
        images.append(folder.image(i).numpy())
        labels.append(item["label"])
        mixes.append(Prompt(item["domain"], tuple(item["classes"])).mix(len(names)))
    ds = SupportSetDataset(np.stack(images), np.asarray(labels), classes=names, name=f"support:{out}")
    ds.prompt_targets = np.stack(mixes).astype(np.float32)
    ds.manifest = manifest
    return ds


class _EpochConcat(ConcatDataset):
    """``ConcatDataset`` that forwards ``set_epoch`` (to ``ReinforcedDataset`` parts)."""

    def set_epoch(self, epoch: int) -> None:
        for d in self.datasets:
            if hasattr(d, "set_epoch"):
                d.set_epoch(epoch)


def support_training_set(real: ImageDataset | Dataset, support: str | os.PathLike[str] | None = None, *,
                         label: str = "first", store: str | os.PathLike[str] | None = None,
                         seed: int = 0) -> Dataset:
    """Real + synthetic training items ``(image, target, label)`` for :class:`drkit.training.Trainer`.

    ``real`` is an :class:`ImageDataset` (one-hot targets) or any dataset already yielding
    ``(image, target, label)`` — e.g. a ``ReinforcedDataset`` of the real data. Synthetic targets:
    ``label="first"`` (one-hot of the prompt's first class), ``"prompt"`` (its class mixture) or
    ``"teacher"`` — the soft labels of ``store``, a ``drkit reinforce imagefolder:SUPPORT`` store.
    """

    if label not in LABEL_MODES:
        raise DataError(f"label must be one of {', '.join(LABEL_MODES)}, got {label!r}")
    real_items = LabelledImages.from_dataset(real) if isinstance(real, ImageDataset) else real
    if support is None:
        return real_items
    classes = real.classes if isinstance(real, ImageDataset) else None
    synth = load_support_set(support, classes=classes)
    if label == "teacher":
        if store is None:
            raise DataError("label='teacher' needs the store made by `drkit reinforce imagefolder:SUPPORT`")
        synth_items: Dataset = ReinforcedDataset(f"imagefolder:{support}", store, seed=seed)
    else:
        labels = torch.as_tensor(synth.labels)
        targets = (torch.from_numpy(synth.prompt_targets) if label == "prompt"
                   else torch.nn.functional.one_hot(labels, synth.num_classes))
        synth_items = LabelledImages(torch.from_numpy(synth.images), targets, labels)
    return _EpochConcat([real_items, synth_items])

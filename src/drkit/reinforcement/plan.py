"""Planning a run before anything is written: ``--out`` checked, data and teachers loaded, the
store's settings computed and compared with an existing store's (resume) — shared by every engine."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..augment.policies import Policy, PolicyConfig
from ..data import ImageDataset, dataset_fingerprint, load_dataset
from ..data.samples import HASH_NAME, dataset_keys, key_scheme
from ..errors import ConfigError, StoreError, StoreMismatchError
from .config import ReinforceConfig
from .store import (
    MANIFEST,
    Store,
    dtype_to_json,
    read_manifest,
    record_dtype,
)
from .teachers import TeacherEnsemble, prepare_teacher

log = logging.getLogger(__name__)

def store_settings(dataset: ImageDataset, policy: Policy, teacher_desc: dict[str, Any], dtype: np.dtype,
              config: ReinforceConfig, device: torch.device) -> dict[str, Any]:
    return {
        "dataset": {"name": dataset.name, **dataset_fingerprint(dataset)},
        "policy": policy.describe(),
        "teacher": {**teacher_desc, "device_type": device.type},
        "num_augs": config.num_augs,
        "topk": min(config.topk, dataset.num_classes),
        "seed": config.seed,
        "shard_size": config.shard_size,
        "teacher_batch": config.teacher_batch,
        "record_dtype": dtype_to_json(dtype),
        "sample_keys": {"scheme": key_scheme(dataset), "hash": HASH_NAME},
    }


def settings_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """The settings that differ between an existing store's ``a`` and a run's ``b``. A store begun by
    a drkit without sample keys (no ``sample_keys`` in ``a``) may be resumed: it gets them."""
    keys = sorted(set(a) | set(b))
    if not prefix and "sample_keys" not in a:
        keys = [k for k in keys if k != "sample_keys"]
    out = []
    for k in keys:
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += settings_diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}")
    return out


@dataclass
class RunPlan:
    """A checked reinforcement run, ready for an engine: what to compute and where it goes.

    Made by :func:`plan_run`; every engine (local, Ray) starts from one, so both check settings,
    fingerprints and an existing store the same way."""

    config: ReinforceConfig
    dataset: ImageDataset
    policy: Policy
    teacher: TeacherEnsemble
    teacher_desc: dict[str, Any]  # members (spec, parameters, weights sha256) and temperature
    dtype: np.dtype  # record dtype of the shards
    settings: dict[str, Any]  # what the manifest records and a resume must match
    device: torch.device  # where the teacher runs (recorded as settings.teacher.device_type)
    root: Path
    manifest: dict[str, Any] | None  # the existing manifest when resuming, else None

    @property
    def complete(self) -> bool:
        return bool(self.manifest and self.manifest.get("complete"))




def check_out_dir(out: str | os.PathLike[str], data: Any = None) -> None:
    """Raise :class:`StoreError` unless ``out`` can become a store: not a file, its nearest existing
    folder writable, and not inside the image folder it is made from (the store would be read as data)."""
    root = Path(out).absolute()
    if root.exists() and not root.is_dir():
        raise StoreError(f"--out {out} exists and is not a directory; choose a directory path")
    parent = root
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise StoreError(f"--out {out}: cannot create or write in {parent} (permission denied); "
                         "choose a directory you can write to")
    if isinstance(data, str) and data.startswith("imagefolder:"):
        src = Path(data.partition(":")[2].split("?")[0]).absolute()
        if root == src or src in root.parents:
            raise StoreError(f"--out {out} lies inside the image folder {src} it is made from; put the store "
                             "elsewhere (it would be read as part of the data)")


def plan_run(data: str | ImageDataset | Dataset, teachers: str | nn.Module | Sequence[str | nn.Module],
             out: str | os.PathLike[str], config: ReinforceConfig, *, device: torch.device,
             download: bool = False) -> RunPlan:
    """Load the dataset and teachers, compute the store's settings and check ``out``: a new or
    empty directory, or a store made with the same settings (resume). Writes nothing. ``out`` is
    checked first (writable, not inside the source images), before data or teachers load."""
    check_out_dir(out, data)
    dataset = load_dataset(data, download=download)
    if len(dataset) == 0:
        raise ConfigError("the dataset is empty: nothing to reinforce")
    keys = dataset_keys(dataset)  # every key a valid, bounded UTF-8 name, before hours are spent
    if len(set(keys)) != len(keys):
        log.warning("%s: its sample keys are not unique: the store will replay by position only, on this "
                    "dataset in this order (not on another copy by key)", dataset.name)
    size = (config.image_size, config.image_size) if config.image_size else None
    policy = Policy(PolicyConfig(config.policy, size=size), dataset.image_shape)
    teacher, teacher_desc = prepare_teacher(teachers, dataset, temperature=config.temperature,
                                            allow_random=config.allow_random_teacher)
    dtype = record_dtype(policy.param_dtype, dataset.num_classes, config.topk)
    settings = store_settings(dataset, policy, teacher_desc, dtype, config, device)
    root = Path(out)

    manifest: dict[str, Any] | None = None
    if root.exists() and not root.is_dir():
        raise StoreError(f"--out {root} exists and is not a directory")
    if (root / MANIFEST).is_file():
        manifest = read_manifest(root)
        differ = settings_diff(manifest["settings"], settings)
        if differ:
            raise StoreMismatchError(
                f"{root} already holds a store made from other settings ({', '.join(differ[:6])} differ); "
                "choose another --out, or delete it to start over"
            )
    elif root.exists() and any(root.iterdir()):
        raise StoreError(f"--out {root} exists, is not empty and is not a drkit store; choose an empty or new directory")
    return RunPlan(config, dataset, policy, teacher, teacher_desc, dtype, settings, device, root, manifest)


def open_complete(plan: RunPlan) -> Store:
    """The store of a plan whose ``out`` is already complete (nothing computed)."""
    log.info("%s is already complete: nothing to do", plan.root)
    store = Store.open(plan.root)
    store.run_stats = {"records_computed": 0, "seconds": 0.0, "records_per_s": 0.0}
    return store

"""Training runs on disk: ``drkit train DATA --arch NAME --mode erm|dr|kd --out RUN``.

Three modes, equal in everything but the target (the comparison of the paper, §5):

- ``erm``: the augmentation policy sampled afresh each epoch, one-hot (mixed for mixing) labels;
- ``dr``: the reinforced store replayed (``ReinforcedDataset``), the stored soft labels;
- ``kd``: the same policy sampled afresh and the teacher ensemble run online on every batch —
  what dataset reinforcement saves; by default the store's own teachers.

A run directory holds ``config.json`` (what defines the run), ``checkpoint.safetensors`` +
``checkpoint.json`` (after every epoch: rerunning resumes), ``metrics.json`` (per-epoch training
and evaluation metrics, wall time) and, once finished, ``model.safetensors`` — which makes the run
usable as a teacher (``--teacher run:DIR``) or as an initialisation (``--init RUN``).

Under ``torchrun --nproc_per_node N -m drkit train ...`` the run is data-parallel
(:mod:`drkit.training.distributed`): every rank builds the same model and data, trains its part
of each epoch with gradients all-reduced, and rank 0 alone writes the run directory, evaluates
and shows progress. ``batch_size`` is per process (global batch: ``batch_size × N``); the number
of processes is part of the run's config, so a run resumes with the same ``N``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import Dataset

from ..augment.policies import DEFAULT_POLICY, Policy, PolicyConfig
from ..data import ImageDataset, fit_images, load_dataset, stratified_subset
from ..errors import ConfigError, StoreMismatchError
from ..inference import predict_probs
from ..metrics import classification_metrics
from ..models import adapt_state_dict, create_model, load_state_dict
from ..reinforcement.store import Store
from ..reinforcement.teachers import expand_teachers, prepare_teacher, run_dir_model, store_teachers
from . import distributed
from .fresh import FreshAugmented
from .loop import TrainConfig, Trainer
from .reinforced_dataset import ReinforcedDataset
from .streamed import StreamedReinforcedDataset

__all__ = ["MODES", "RunConfig", "TrainResult", "train_run", "load_run_model", "default_eval_data"]

log = logging.getLogger(__name__)

MODES = ("erm", "dr", "kd")
# TrainConfig fields added after runs were first written: left out of config.json at their default,
# so that a run made before them still resumes
_ADDED_DEFAULTS = {"label_smoothing": 0.0}


class _EpochSubset(Dataset):
    """``Subset`` that forwards ``set_epoch`` to the dataset it selects from."""

    def __init__(self, dataset: Dataset, indices: np.ndarray) -> None:
        self.dataset, self.indices = dataset, indices

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[int(self.indices[i])]


def default_eval_data(data: str | ImageDataset) -> str | None:
    """The test split of a bundled dataset (`digits:test`, `fashion-mnist:test`), else None."""
    if isinstance(data, str) and data in ("digits", "fashion-mnist"):
        return f"{data}:test"
    return None


def _init_from(model: nn.Module, source: str | Path) -> list[str]:
    """Load initial weights into ``model``: a drkit run directory (its ``model.safetensors``) or a
    weights file (a raw timm/safetensors state dict, names with or without drkit's ``model.``
    prefix; an RGB stem is adapted to grayscale as timm does). Tensors whose shape differs (a new
    head when the classes differ) keep their fresh initialisation; returns their names."""
    source = Path(source)
    if source.is_dir():
        if not (source / "model.safetensors").is_file():
            raise ConfigError(f"--init {source}: not a finished drkit run (no model.safetensors)")
        source = source / "model.safetensors"
    elif not source.is_file():
        raise ConfigError(f"--init {source}: no such run directory or weights file")
    fit, skipped = adapt_state_dict(load_state_dict(source), model)
    if len(fit) == 0:
        raise ConfigError(f"--init {source}: no tensor fits this architecture; pretrain the same --arch")
    model.load_state_dict(fit, strict=False)
    if skipped:
        log.info("--init %s: fresh %s", source, ", ".join(skipped))
    return skipped


def load_run_model(run_dir: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The finished model of a run and its config."""

    cfg = json.loads((Path(run_dir) / "config.json").read_text())
    return run_dir_model(Path(run_dir)), cfg


@dataclass
class RunConfig:
    """What defines a training run besides its optimisation (:class:`TrainConfig`): the
    architecture, the target (``mode``), the data side and the teacher side. Checked when made."""

    arch: str = "smallcnn"  # a drkit or timm name, NAME[.TAG]@pretrained[:FILE] for pretrained weights
    mode: str = "dr"  # erm: labels; dr: the reinforced store; kd: an online teacher
    policy: str | None = None  # erm/kd augmentation policy (default: the store's, else randaugment)
    init: str | None = None  # fine-tune from a run directory or a weights file
    train_fraction: float = 1.0  # stratified fraction of the training set
    views: int = 1  # dr: stored augmentations per decoded image (FKD-style)
    temperature: float | None = None  # kd: default the fitted one of an ensemble:DIR, else 1
    image_size: int | tuple[int, int] | None = None  # erm/kd input size (dr: the store's)
    augmix: bool = False  # erm/kd: torchvision's AugMix on the views
    reinforced_prob: float = 1.0  # dr: probability of a replayed item; else the original image, hard label (ml-dr's p)
    trust_store_teachers: bool = False  # kd without teachers: load the ones the store names
    stream: bool = False  # dr on a wds: source: read its shards in sequence (StreamedReinforcedDataset)
    only_matching: bool = False  # dr on another copy of the data: train on the samples that match the store by key

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.augmix and self.mode == "dr":
            raise ConfigError("augmix is for erm/kd views; a dr student replays the store's augmentations")
        if not 0 < self.train_fraction <= 1:
            raise ConfigError(f"train fraction must be in (0, 1], got {self.train_fraction}")
        if self.views < 1:
            raise ConfigError(f"views must be >= 1, got {self.views}")
        if not 0 <= self.reinforced_prob <= 1:
            raise ConfigError(f"reinforced_prob must be in [0, 1], got {self.reinforced_prob}")
        if self.reinforced_prob < 1 and self.mode != "dr":
            raise ConfigError("reinforced_prob is for dr students (the share of stored views; the rest are originals)")
        if self.temperature is not None and not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if self.only_matching and (self.mode != "dr" or self.train_fraction < 1 or self.stream):
            raise ConfigError("only_matching is for dr students on a whole map-style copy of the data (no train "
                              "fraction, no --stream): it trains on the samples the store's keys match")
        if self.stream and (self.mode != "dr" or self.train_fraction < 1):
            raise ConfigError("stream is for dr students on a whole wds: source (no train fraction): erm/kd and "
                              "subsets read samples by index")


@dataclass(eq=False)
class TrainResult(Mapping[str, Any]):
    """A finished run, as its ``metrics.json`` records it. Also reads as that JSON's mapping
    (``result["final"]["top1"]``, drkit 0.1's return value); :meth:`to_dict` gives the dict."""

    path: Path  # the run directory
    config: dict[str, Any]  # the run's config.json: what defines it
    epochs: list[dict[str, Any]]  # per epoch: loss, lr, seconds, img/s and eval_* metrics
    train_seconds: float  # training wall time, evaluation excluded
    final: dict[str, float] | None = None  # eval metrics after the last epoch (None without eval data)
    complete: bool = True

    @property
    def top1(self) -> float | None:
        """Final top-1 on the evaluation data (None without it)."""
        return None if self.final is None else float(self.final["top1"])

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"config": self.config, "epochs": self.epochs, "train_seconds": self.train_seconds}
        if self.final is not None:
            d["final"] = self.final
        d["complete"] = self.complete
        return d

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and self.to_dict() == dict(other)


def train_run(
    data: str | ImageDataset,
    out: str | os.PathLike[str],
    run: RunConfig | None = None,
    *,
    store: str | os.PathLike[str] | None = None,
    teachers: Sequence[str | nn.Module] = (),
    eval_data: str | ImageDataset | None = None,
    indices: Sequence[int] | np.ndarray | None = None,
    config: TrainConfig | None = None,
    progress: bool = True,
    **overrides: Any,
) -> TrainResult:
    """Train on ``data`` into the run directory ``out`` as ``run`` (:class:`RunConfig`) says, with
    the optimisation of ``config`` (:class:`TrainConfig`); resumes a run with the same settings.
    ``overrides`` set :class:`RunConfig` fields (``arch="resnet18", mode="erm"``, as drkit 0.1's
    keywords). Returns the :class:`TrainResult` also written to ``out/metrics.json``.

    The model's input size is the store's view size in ``dr`` mode, else ``image_size`` (an int for
    square views), else the size of the first image; images of other sizes (an image folder) are
    cropped from their own extent during training and fitted (resize, centre crop) for evaluation.

    ``arch`` may ask for pretrained weights (``NAME@pretrained[:FILE]``, :mod:`drkit.models`);
    ``init`` is a run directory or a weights file. ``augmix`` adds AugMix to erm/kd views;
    ``indices`` trains on these samples of ``data`` only (``drkit teach`` holds a split out so).
    ``stream`` (dr on a ``wds:`` source) reads the shards in sequence instead of one random read
    per sample (:class:`~drkit.training.streamed.StreamedReinforcedDataset`).
    kd without ``teachers`` uses the store's only with ``trust_store_teachers`` (a store is data,
    not code: :func:`drkit.reinforcement.teachers.store_teachers`). The architecture is built and
    checked (one forward pass at the data's size) before evaluation data, store views or teachers
    are loaded."""
    try:
        run = dataclasses.replace(run or RunConfig(), **overrides)
    except TypeError as e:
        raise ConfigError(f"unknown run setting: {e}") from e
    cfg = config or TrainConfig()
    with distributed.process_group_from_env(cfg.device) as ctx:
        return _train_run(data, out, run, cfg, ctx, store=store, teachers=teachers, eval_data=eval_data,
                          indices=indices, progress=progress)


def _train_run(data: str | ImageDataset, out: str | os.PathLike[str], run: RunConfig, cfg: TrainConfig,
               ctx: distributed.DistContext, *, store: str | os.PathLike[str] | None,
               teachers: Sequence[str | nn.Module], eval_data: str | ImageDataset | None,
               indices: Sequence[int] | np.ndarray | None, progress: bool) -> TrainResult:
    """:func:`train_run` on this process (one rank of ``ctx``; rank 0 writes and evaluates)."""
    arch, mode, policy, init = run.arch, run.mode, run.policy, run.init
    train_fraction, views, temperature, image_size = run.train_fraction, run.views, run.temperature, run.image_size
    augmix, trust_store_teachers = run.augmix, run.trust_store_teachers
    if indices is not None and train_fraction < 1:
        raise ConfigError("give indices or train_fraction, not both")
    if indices is not None and run.stream:
        raise ConfigError("a streamed run reads whole shards: give no indices")
    dataset = load_dataset(data)
    if indices is not None and run.only_matching:
        raise ConfigError("only_matching chooses the samples itself: give no indices")
    opened = Store.open(store, dataset=dataset, only_matching=run.only_matching) if store is not None else None
    if mode == "dr" and opened is None:
        raise ConfigError("mode dr needs --store (a store made by `drkit reinforce` from this dataset)")
    policy_name = policy or (opened.policy_config.name if opened else DEFAULT_POLICY)
    if mode == "kd" and not teachers:
        if opened is None:
            raise ConfigError("mode kd needs --teacher (or --store with --trust-store-teachers, whose teachers are "
                              "then used)")
        teachers = store_teachers(opened.settings, where=str(opened.root), trust=trust_store_teachers)[0]

    c, h, w = dataset.image_shape
    if image_size is not None:
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if len(size) != 2 or min(size) <= 0:
            raise ConfigError(f"image_size must be a positive int or (H, W), got {image_size}")
        if opened is not None and tuple(opened.policy().size) != size:
            raise ConfigError(f"image_size {size} differs from the store's view size {opened.policy().size}: "
                              "a DR student trains at the store's size (drop --image-size)")
        h, w = size
    elif opened is not None:
        h, w = opened.policy().size
    torch.manual_seed(cfg.seed)
    model = create_model(arch, num_classes=dataset.num_classes, in_chans=c, image_size=(h, w))
    eval_name = eval_data if eval_data is not None else default_eval_data(data)
    eval_set = load_dataset(eval_name) if eval_name is not None else None
    if eval_set is not None:
        ec, eh, ew = eval_set.image_shape
        if ec != c or eval_set.num_classes != dataset.num_classes or (
                (eh, ew) != (h, w) and not eval_set.variable_size):
            raise ConfigError(f"eval data {eval_set.name} ({eval_set.image_shape}, {eval_set.num_classes} classes) "
                              f"does not match the run's input ({(c, h, w)}, {dataset.num_classes} classes)")
        eval_set = fit_images(eval_set, (h, w))
    if indices is not None:
        indices = np.unique(np.asarray(indices, dtype=np.int64))
        if len(indices) == 0 or indices[0] < 0 or indices[-1] >= len(dataset):
            raise ConfigError(f"indices must select samples 0..{len(dataset) - 1} of {dataset.name}")
    elif train_fraction < 1:
        indices = stratified_subset(dataset.labels, train_fraction, seed=cfg.seed)
    if mode == "kd":
        teachers, temperature = expand_teachers(list(teachers), temperature)
    else:
        temperature = 1.0 if temperature is None else temperature

    run_config = {
        "arch": arch, "mode": mode, "num_classes": dataset.num_classes, "in_chans": c, "image_size": [h, w],
        "dataset": dataset.name, "train_samples": len(indices) if indices is not None else len(dataset),
        "train_fraction": train_fraction, "eval_data": eval_set.name if eval_set else None,
        "store": str(opened.root) if opened else None, "policy": policy_name, "views": views,
        "teachers": [t if isinstance(t, str) else type(t).__name__ for t in teachers] if mode == "kd" else [],
        "temperature": temperature, "init": str(init) if init else None,
        **({"augmix": True} if augmix else {}),
        **({"reinforced_prob": run.reinforced_prob} if run.reinforced_prob < 1 else {}),
        **({"stream": True} if run.stream else {}),
        # the samples of this copy that match the store by key (the rest are left out, logged)
        **({"only_matching": True, "train_samples": opened.match_dataset(dataset).matched}
           if run.only_matching and opened is not None else {}),
        **({"indices_sha256": hashlib.sha256(indices.tobytes()).hexdigest()}
           if indices is not None and train_fraction == 1 else {}),
        "train": {k: v for k, v in asdict(cfg).items() if k not in ("num_workers", "device", "precision")
                  and not (k in _ADDED_DEFAULTS and v == _ADDED_DEFAULTS[k])},
        # the global batch and the data order depend on the number of processes (absent: one)
        **({"world_size": ctx.world_size} if ctx.world_size > 1 else {}),
    }
    root = Path(out)
    if (root / "config.json").is_file():
        old = json.loads((root / "config.json").read_text())
        if old != run_config:
            differ = sorted(k for k in set(old) | set(run_config) if old.get(k) != run_config.get(k))
            raise StoreMismatchError(f"{root} holds a run with other settings ({', '.join(differ)} differ); "
                                     "choose another --out or delete it")
    if ctx.is_main:
        root.mkdir(parents=True, exist_ok=True)

    if mode == "dr" and run.stream:  # shards in sequence, split over DDP ranks and loader workers
        train_set: Dataset = StreamedReinforcedDataset(dataset, opened, seed=cfg.seed, views=views,  # type: ignore[arg-type]
                                                       policy=policy, p=run.reinforced_prob)
    elif mode == "dr":
        train_set = ReinforcedDataset(dataset, opened, seed=cfg.seed, views=views,  # type: ignore[arg-type]
                                      policy=policy, p=run.reinforced_prob, only_matching=run.only_matching)
    else:
        train_set = FreshAugmented(dataset, Policy(PolicyConfig(policy_name, size=(h, w)), dataset.image_shape),
                                   seed=cfg.seed, augmix=augmix)
    if indices is not None:
        train_set = _EpochSubset(train_set, indices)
    teacher = prepare_teacher(list(teachers), dataset, temperature=temperature)[0] if mode == "kd" else None

    if init:
        _init_from(model, init)
    trainer = Trainer(model, train_set, cfg, teacher=teacher)
    if (root / "checkpoint.json").is_file():  # every rank loads rank 0's checkpoint (a shared --out)
        trainer.load(root)
        if ctx.is_main:
            log.info("resuming %s after epoch %d", root, trainer.epoch)
    if ctx.is_main:
        (root / "config.json").write_text(json.dumps(run_config, indent=2) + "\n")

    metrics: dict[str, Any] = {"config": run_config, "epochs": list(trainer.history)}
    while trainer.epoch < cfg.epochs:
        m = trainer.run_epoch(progress=progress, desc=f"{mode} {arch}")
        if ctx.is_main:  # the other ranks wait at the barrier
            if eval_set is not None:
                m.update({f"eval_{k}": v for k, v in classification_metrics(
                    predict_probs(trainer.model, eval_set), eval_set.labels).items()})
            trainer.save(root)
            metrics["epochs"] = trainer.history
            (root / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        distributed.barrier()  # no rank runs ahead (or fails) while rank 0 writes the checkpoint

    if ctx.is_main:
        save_file({k: v.detach().cpu().contiguous() for k, v in trainer.model.state_dict().items()},
                  str(root / "model.safetensors"))
        metrics["epochs"] = trainer.history
        metrics["train_seconds"] = sum(e["seconds"] for e in trainer.history)
        if eval_set is not None:
            metrics["final"] = {k[5:]: v for k, v in trainer.history[-1].items() if k.startswith("eval_")}
        metrics["complete"] = True
        (root / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    metrics = distributed.broadcast_json(metrics, trainer.device)  # every rank returns rank 0's result
    return TrainResult(root, run_config, metrics["epochs"], metrics["train_seconds"], metrics.get("final"))

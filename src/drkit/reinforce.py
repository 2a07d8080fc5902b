"""Reinforce a dataset: augment every sample ``num_augs`` times, run the teacher ensemble once per
view, keep the parameters and the sparsified output (Faghri et al., ICCV 2023, §3).

Data flow: ``dataset -> policy.sample/apply (DataLoader workers) -> teacher (fixed-size chunks)
-> topk_sparsify -> ShardWriter``.

Why the store is byte-identical whatever the batch size, worker count or interruptions:

- parameters are a pure function of (seed, sample, augmentation) (``drkit._rng``);
- records are laid out shard by shard in (sample, augmentation) order, and the teacher always
  sees the same chunks of that order — ``teacher_batch`` rows from the start of each shard — so
  its floating-point results do not depend on how the DataLoader batched the images;
- shards are written atomically and a rerun recomputes exactly the missing ones.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from . import __version__
from ._progress import progress_bar
from .data import ImageDataset, dataset_fingerprint, load_dataset
from .errors import ConfigError, StoreError, StoreMismatchError, TeacherError
from .policies import DEFAULT_POLICY, Policy, PolicyConfig
from .store import (
    FORMAT,
    MANIFEST,
    SCHEMA_VERSION,
    ShardWriter,
    Store,
    dtype_to_json,
    read_manifest,
    record_dtype,
    shard_ranges,
    write_manifest,
)
from .targets import topk_sparsify
from .teachers import TeacherEnsemble, best_device, prepare_teacher  # noqa: F401 (prepare_teacher: old import path)

if TYPE_CHECKING:
    from .ray_engine import RayOptions

__all__ = ["ReinforceConfig", "reinforce", "AugmentedRecords", "ShardComputer", "prepare_teacher", "RunPlan",
           "plan_run", "StoreSession"]

log = logging.getLogger(__name__)


@dataclass
class ReinforceConfig:
    """Settings of one reinforcement run. Every field except the throughput knobs
    (``batch_size``, ``num_workers``, ``device`` aside) is recorded in the store's manifest."""

    policy: str = field(default=DEFAULT_POLICY, metadata={"help": "augmentation policy: cropflip, randaugment, mixing, randaugment+mixing"})
    num_augs: int = field(default=16, metadata={"help": "stored augmentations per sample"})
    topk: int = field(default=10, metadata={"help": "teacher probabilities kept per augmentation (all when >= classes)"})
    seed: int = field(default=0, metadata={"help": "seed of every random choice"})
    temperature: float | None = field(default=None, metadata={"help": "softmax temperature of the teacher ensemble (default: the one `drkit teach` fitted for an ensemble:DIR, else 1)"})
    image_size: int | None = field(default=None, metadata={"help": "output side length of augmented views (default: source size)"})
    shard_size: int = field(default=1024, metadata={"help": "samples per shard (the unit of work and of resume)"})
    teacher_batch: int = field(default=256, metadata={"help": "records per teacher forward; fixed so results do not depend on batch_size"})
    batch_size: int = field(default=128, metadata={"help": "DataLoader batch size (throughput only)"})
    num_workers: int = field(default=-1, metadata={"help": "DataLoader workers; -1: one per spare CPU core, up to 8"})
    device: str | None = field(default=None, metadata={"help": "teacher device (default: cuda, mps, then cpu)"})
    allow_random_teacher: bool = field(default=False, metadata={"help": "accept teachers with random weights (cost benchmarks only: their soft labels are meaningless)"})

    def __post_init__(self) -> None:
        for name in ("num_augs", "topk", "shard_size", "teacher_batch", "batch_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.num_augs >= 65536:
            raise ConfigError(f"num_augs must be below 65536, got {self.num_augs}")
        if self.seed < 0:
            raise ConfigError(f"seed must be non-negative, got {self.seed}")
        if self.temperature is not None and not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        PolicyConfig(self.policy)  # validates the name

    def workers(self) -> int:
        if self.num_workers >= 0:
            return self.num_workers
        return max(0, min(8, (os.cpu_count() or 1) - 1))


class AugmentedRecords(Dataset):
    """Flat view of the records of some shards: item ``r`` is the augmented view of one
    (sample, augmentation) pair and its parameter record, in shard order."""

    def __init__(self, dataset: ImageDataset, policy: Policy, *, seed: int, num_augs: int,
                 ranges: Sequence[tuple[int, int]]) -> None:
        self.dataset, self.policy, self.seed, self.num_augs = dataset, policy, seed, num_augs
        self.starts = [a for a, _ in ranges]
        self.offsets = np.cumsum([0] + [(b - a) * num_augs for a, b in ranges])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, r: int) -> tuple[int, int]:
        part = int(np.searchsorted(self.offsets, r, side="right")) - 1
        i, j = divmod(r - int(self.offsets[part]), self.num_augs)
        return self.starts[part] + i, j

    def __getitem__(self, r: int) -> tuple[torch.Tensor, np.ndarray]:
        i, j = self.locate(r)
        n = len(self.dataset)
        image = self.dataset.image(i)
        params = self.policy.sample(self.seed, i, j, num_samples=n, num_augs=self.num_augs,
                                    image_hw=image.shape[-2:])
        if self.policy.config.uses_mixing:
            p, pa = int(params["partner"]), int(params["partner_aug"])
            partner = self.dataset.image(p)
            view = self.policy.apply(image, params, partner,
                                     self.policy.sample_base(self.seed, p, pa, image_hw=partner.shape[-2:]))
        else:
            view = self.policy.apply(image, params)
        return view, params


def _collate(batch: list[tuple[torch.Tensor, np.ndarray]]) -> tuple[torch.Tensor, np.ndarray]:
    return torch.stack([b[0] for b in batch]), np.stack([b[1] for b in batch])


class ShardComputer:
    """Computes the records of shards: augmentation in DataLoader workers, the teacher on
    ``device`` in fixed ``teacher_batch`` chunks from each shard's start. Engines (local, Ray)
    call :meth:`run` and hand the resulting arrays to a :class:`ShardWriter`."""

    def __init__(self, dataset: ImageDataset, policy: Policy, teacher: TeacherEnsemble, dtype: np.dtype,
                 config: ReinforceConfig, device: torch.device) -> None:
        self.dataset, self.policy, self.dtype, self.config, self.device = dataset, policy, dtype, config, device
        self.teacher = teacher.to(device)
        self.topk = min(config.topk, dataset.num_classes)

    def _forward(self, views: torch.Tensor, first_record: int) -> torch.Tensor:
        probs = self.teacher(views.to(self.device, non_blocking=True)).float()
        if probs.ndim != 2 or probs.shape[1] != self.dataset.num_classes:
            raise TeacherError(
                f"the teacher returns {tuple(probs.shape[1:])} outputs per image but the dataset has "
                f"{self.dataset.num_classes} classes; give it a head with {self.dataset.num_classes} outputs"
            )
        bad = ~torch.isfinite(probs).all(dim=1)
        if bad.any():
            r = first_record + int(bad.nonzero()[0, 0])
            raise TeacherError(
                f"the teacher produced NaN/inf for record {r} (sample {r // self.config.num_augs}, "
                f"augmentation {r % self.config.num_augs}); check its weights and input normalization"
            )
        return probs

    def probe(self) -> None:
        """Run the teacher on one view before anything is written (width, finiteness)."""
        view, _ = AugmentedRecords(self.dataset, self.policy, seed=self.config.seed, num_augs=self.config.num_augs,
                                   ranges=[(0, 1)])[0]
        self._forward(view[None], 0)

    def run(self, shards: Sequence[tuple[int, int, int]],
            on_progress: Callable[[int], None] | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(shard index, first sample, records)`` for each of ``shards`` in order."""
        if not shards:
            return
        cfg, A = self.config, self.config.num_augs
        records = AugmentedRecords(self.dataset, self.policy, seed=cfg.seed, num_augs=A,
                                   ranges=[(a, b) for _, a, b in shards])
        workers = cfg.workers()
        loader = DataLoader(records, batch_size=cfg.batch_size, shuffle=False, num_workers=workers,
                            collate_fn=_collate, pin_memory=self.device.type == "cuda",
                            persistent_workers=False, prefetch_factor=4 if workers else None)
        it = iter(loader)
        views: list[torch.Tensor] = []
        params: list[np.ndarray] = []
        buffered = 0

        def take(n: int) -> tuple[torch.Tensor, np.ndarray]:
            nonlocal views, params, buffered
            x, p = torch.cat(views), np.concatenate(params)
            views, params, buffered = [x[n:]], [p[n:]], buffered - n
            return x[:n], p[:n]

        for s, a, b in shards:
            rows = (b - a) * A
            out = np.zeros(rows, dtype=self.dtype)
            done = 0
            while done < rows:
                need = min(cfg.teacher_batch, rows - done)
                while buffered < need:
                    x, p = next(it)
                    views.append(x)
                    params.append(p)
                    buffered += len(x)
                    if on_progress:
                        on_progress(len(x))
                x, p = take(need)
                probs = self._forward(x, a * A + done)
                values, ids = topk_sparsify(probs, self.topk)
                chunk = out[done : done + need]
                for name in p.dtype.names:
                    chunk[name] = p[name]
                chunk["probs"] = values.cpu().numpy()
                if "classes" in self.dtype.names:
                    chunk["classes"] = ids.cpu().numpy()
                done += need
            yield s, a, out.reshape(b - a, A)


def _settings(dataset: ImageDataset, policy: Policy, teacher_desc: dict[str, Any], dtype: np.dtype,
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
    }


def _diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    keys = sorted(set(a) | set(b))
    out = []
    for k in keys:
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{k}.")
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


def resolve_config(config: ReinforceConfig | None, overrides: dict[str, Any]) -> ReinforceConfig:
    try:
        return dataclasses.replace(config or ReinforceConfig(), **overrides)
    except TypeError as e:
        raise ConfigError(f"unknown reinforce setting: {e}") from e


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
    size = (config.image_size, config.image_size) if config.image_size else None
    policy = Policy(PolicyConfig(config.policy, size=size), dataset.image_shape)
    teacher, teacher_desc = prepare_teacher(teachers, dataset, temperature=config.temperature,
                                            allow_random=config.allow_random_teacher)
    dtype = record_dtype(policy.param_dtype, dataset.num_classes, config.topk)
    settings = _settings(dataset, policy, teacher_desc, dtype, config, device)
    root = Path(out)

    manifest: dict[str, Any] | None = None
    if root.exists() and not root.is_dir():
        raise StoreError(f"--out {root} exists and is not a directory")
    if (root / MANIFEST).is_file():
        manifest = read_manifest(root)
        differ = _diff(manifest["settings"], settings)
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


class StoreSession:
    """The writing side of a run, shared by every engine: creates ``out``, keeps the complete
    shards of an interrupted run, writes each new shard atomically (:class:`ShardWriter`, in any
    order) followed by the manifest (shard list sorted), and marks the store complete at the end.

    ``pending`` lists the ``(shard index, first sample, end sample)`` still to compute.
    """

    def __init__(self, plan: RunPlan) -> None:
        root = self.root = plan.root
        try:
            root.mkdir(parents=True)
            self.created = True  # by this process: abort() may remove it again (only if empty)
        except FileExistsError:
            self.created = False
        # one writer per store: a second one fails here (StoreLockedError naming the holder's PID),
        # having changed nothing
        self.writer = ShardWriter(root, lock=True)
        try:
            manifest = plan.manifest
            if (root / MANIFEST).is_file():  # re-read under the lock: another run may have written it since the plan
                manifest = read_manifest(root)
                differ = _diff(manifest["settings"], plan.settings)
                if differ:
                    raise StoreMismatchError(
                        f"{root} already holds a store made from other settings ({', '.join(differ[:6])} differ); "
                        "choose another --out, or delete it to start over")
            self.fresh = manifest is None  # then the manifest is this run's, and abort() may remove it
            self.writer.clean_temporaries()
            self.done: dict[int, dict[str, Any]] = {}
            if manifest is not None:
                for s in manifest["shards"]:
                    p = root / s["file"]
                    if p.is_file() and p.stat().st_size == s["bytes"]:
                        self.done[s["index"]] = s
            self.manifest = {"format": FORMAT, "schema_version": SCHEMA_VERSION, "drkit_version": __version__,
                             "complete": False, "settings": plan.settings,
                             "shards": [self.done[k] for k in sorted(self.done)]}
            write_manifest(root, self.manifest)
        except BaseException:
            self.writer.close()
            self._remove_created_dir()
            raise
        self.num_augs = plan.config.num_augs
        self.source_bytes = plan.dataset.nbytes()
        self.pending = [r for r in shard_ranges(len(plan.dataset), plan.config.shard_size) if r[0] not in self.done]
        self.total = sum((b - a) * self.num_augs for _, a, b in self.pending)
        log.info("reinforcing %s: %d shards to do (%d already done), %d records", plan.dataset.name,
                 len(self.pending), len(self.done), self.total)

    def add(self, index: int, start: int, records: np.ndarray) -> None:
        """Write one computed shard, then the manifest that lists it."""
        if index in self.done:  # a shard computed twice (a retried task) is written once
            return
        self.done[index] = self.writer.write(index, start, records).to_dict()
        self.manifest["shards"] = [self.done[k] for k in sorted(self.done)]
        write_manifest(self.root, self.manifest)

    def _remove_created_dir(self) -> None:
        if self.created:
            try:
                self.root.rmdir()
            except OSError:  # not empty: files this run did not make are left alone
                pass

    def abort(self) -> None:
        """After a failure or an interrupt: drop temporaries and release the lock; if nothing was
        written, remove what this run created (its manifest, the directory if it made it) and
        nothing else."""
        try:
            self.writer.clean_temporaries()
            if self.fresh and not self.done:
                (self.root / MANIFEST).unlink(missing_ok=True)
        finally:
            self.writer.close()
            if self.fresh and not self.done:
                self._remove_created_dir()

    def finish(self, seconds: float, **stats: Any) -> Store:
        """Mark the store complete, release the lock and open it, with ``run_stats`` of this call."""
        try:
            self.manifest["complete"] = True
            write_manifest(self.root, self.manifest)
        finally:
            self.writer.close()
        store = Store.open(self.root)
        store.run_stats = {"records_computed": self.total, "seconds": seconds,
                           "records_per_s": self.total / seconds if seconds > 0 else 0.0,
                           "source_bytes": self.source_bytes, **stats}
        return store


def reinforce(
    data: str | ImageDataset | Dataset,
    teachers: str | nn.Module | Sequence[str | nn.Module],
    out: str | os.PathLike[str],
    config: ReinforceConfig | None = None,
    *,
    progress: bool = True,
    download: bool = False,
    engine: str = "local",
    ray_options: RayOptions | None = None,
    **overrides: Any,
) -> Store:
    """Reinforce ``data`` with ``teachers`` into the store directory ``out`` and open it.

    ``overrides`` set :class:`ReinforceConfig` fields (``policy="cropflip"``, ``num_augs=8``, ...).
    Rerunning with the same settings resumes an interrupted run (complete shards are kept); an
    ``out`` made from other settings is an error. The returned store's ``run_stats`` tells what
    this call computed and how fast.

    ``engine="ray"`` computes the shards on a Ray cluster (``ray_options``:
    :class:`drkit.ray_engine.RayOptions`; needs ``pip install drkit[ray]``) and writes the same
    store, byte for byte; a store started by one engine can be resumed by the other.
    """
    config = resolve_config(config, overrides)
    if engine == "ray":
        from .ray_engine import reinforce_on_ray

        return reinforce_on_ray(data, teachers, out, config, options=ray_options, progress=progress,
                                download=download)
    if engine != "local":
        raise ConfigError(f"unknown engine {engine!r}: use 'local' or 'ray'")
    if ray_options is not None:
        raise ConfigError("ray_options are for engine='ray'")
    device = torch.device(config.device) if config.device else best_device()
    plan = plan_run(data, teachers, out, config, device=device, download=download)
    if plan.complete:
        return open_complete(plan)

    computer = ShardComputer(plan.dataset, plan.policy, plan.teacher, plan.dtype, config, device)
    computer.probe()  # fails on a wrong-width or NaN teacher before anything is written

    session = StoreSession(plan)
    bar = progress_bar(session.total, desc="reinforce", unit="img", enabled=progress)
    t0 = time.perf_counter()
    try:
        for s, a, recs in computer.run(session.pending, on_progress=bar.update):
            session.add(s, a, recs)
    except BaseException:
        session.abort()
        raise
    finally:
        bar.close()
    return session.finish(time.perf_counter() - t0)

"""Reinforce a dataset (the local engine, and the entry point of both engines): augment every
sample ``num_augs`` times, run the teacher ensemble once per view, keep the parameters and the
sparsified output (Faghri et al., ICCV 2023, §3).

Data flow: ``dataset -> policy.sample/apply (DataLoader workers) -> teacher (fixed-size chunks)
-> topk_sparsify -> ShardWriter`` (:mod:`drkit.reinforcement.writer`).

Why the store is byte-identical whatever the batch size, worker count or interruptions:

- parameters are a pure function of (seed, sample, augmentation) (``drkit.augment.rng``);
- records are laid out shard by shard in (sample, augmentation) order, and the teacher always
  sees the same chunks of that order — ``teacher_batch`` rows from the start of each shard — so
  its floating-point results do not depend on how the DataLoader batched the images;
- shards are written atomically and a rerun recomputes exactly the missing ones.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from .._progress import progress_bar
from ..data import ImageDataset
from ..errors import ConfigError
from ..inference import best_device
from .compute import ShardComputer
from .config import ReinforceConfig, resolve_config
from .plan import open_complete, plan_run
from .ray_engine import RayOptions, reinforce_on_ray
from .session import StoreSession
from .store import Store


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
    :class:`drkit.reinforcement.ray_engine.RayOptions`; needs ``pip install drkit[ray]``) and writes the same
    store, byte for byte; a store started by one engine can be resumed by the other.
    """
    config = resolve_config(config, overrides)
    if engine == "ray":

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
        for s, a, recs, keys in computer.run(session.pending, on_progress=bar.update):
            session.add(s, a, recs, keys)
    except BaseException:
        session.abort()
        raise
    finally:
        bar.close()
    return session.finish(time.perf_counter() - t0)

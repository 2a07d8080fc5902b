"""One worker of the Ray engine (:mod:`drkit.reinforcement.ray_engine`): a Ray actor that loads the
dataset, policy and teacher ensemble once and computes whole shards with the local engine's
:class:`~drkit.reinforcement.ShardComputer`, counting where its time goes.

This module is what every worker process imports (Ray unpickles the actor class by reference), so
it imports little: ``import drkit`` is lazy and Ray itself is imported inside the methods.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

import numpy as np
import torch

from ..augment.policies import Policy, PolicyConfig
from ..data import ArrayDataset, dataset_fingerprint
from ..errors import DataError, TeacherError
from .compute import ShardComputer
from .config import ReinforceConfig
from .teachers import prepare_teacher

__all__ = ["ShardWorker", "TimedComputer"]


class ShardWorker:
    """One Ray actor: loads the dataset, policy and teacher ensemble once, computes whole shards.

    The constructor takes only small settings; the dataset and teacher come as ``payload``
    (``[ref(dataset), ref(teacher members)]``, kept alive by the driver) with each call and are
    loaded by the first one. A constructor that took them would make Ray keep large arguments
    for restarts, and a constructor that raised would only surface as a dead actor; a call that
    raises brings drkit's own error (wrong-width teacher, unreadable data) back to the driver."""

    def __init__(self, policy: PolicyConfig, dtype: np.dtype, config: ReinforceConfig,
                 settings: dict[str, Any], teacher_desc: dict[str, Any], device: str, threads: int) -> None:
        self.created_at = time.time()  # wall clock: the driver compares it with when it asked for the actor
        # The teacher's float results may depend on the number of intra-op threads: pin it.
        torch.set_num_threads(threads)
        # Arrays shipped through Ray's object store are read-only; drkit's ops never write to a
        # source image (they return new tensors), so the zero-copy view is safe.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        self.policy, self.dtype, self.config, self.settings = policy, dtype, config, settings
        self.teacher_desc, self.device = teacher_desc, torch.device(device)
        self.computer: TimedComputer | None = None
        self.fetch_s = self.load_s = 0.0

    def _load(self, payload: list[Any]) -> TimedComputer:
        if self.computer is not None:
            return self.computer
        import ray  # the optional Ray extra (drkit[ray]): imported where it is used

        t0 = time.perf_counter()
        dataset, teachers = ray.get(payload)
        t1 = self.fetch_s = time.perf_counter() - t0
        if not isinstance(dataset, ArrayDataset):  # read from files on this node: same content?
            want = {k: v for k, v in self.settings["dataset"].items() if k != "name"}
            if dataset_fingerprint(dataset) != want:
                raise DataError(f"{dataset.name} reads differently on worker node {_node()} than on the "
                                "driver: the data path must hold the same files on every node")
        teacher, desc = prepare_teacher(teachers, dataset, temperature=self.teacher_desc["temperature"],
                                        allow_random=self.config.allow_random_teacher)
        for i, (got, want) in enumerate(zip(desc["members"], self.teacher_desc["members"], strict=True)):
            if got != want:
                raise TeacherError(
                    f"teacher {i} ({want.get('spec', want.get('class'))}) loads other weights on worker node "
                    f"{_node()} than on the driver: give every node the same checkpoint (a timm teacher "
                    "without one is randomly initialised in each process)"
                )
        policy = Policy(self.policy, dataset.image_shape)
        self.computer = TimedComputer(dataset, policy, teacher, self.dtype, self.config, self.device)
        self.load_s = time.perf_counter() - t0 - t1
        return self.computer

    def ready(self, payload: list[Any]) -> dict[str, Any]:
        """Load (on the first call) and say where and how this worker runs, and what starting cost."""
        import ray  # the optional Ray extra (drkit[ray]): imported where it is used

        self._load(payload)
        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(), "ip": _node(),
                "threads": torch.get_num_threads(), "omp_threads": os.environ.get("OMP_NUM_THREADS"),
                "dataloader_workers": self.config.workers(), "device": str(self.device),
                "created_at": self.created_at, "fetch_s": self.fetch_s, "load_s": self.load_s}

    def compute(self, shard: tuple[int, int, int], payload: list[Any]
                ) -> tuple[int, int, np.ndarray, np.ndarray, dict[str, Any]]:
        """The shard's records and key table, and what this worker has spent its time on since it
        (re)started: shards, seconds computing them, of which in the teacher's forward (the rest:
        augmentation, top-k, packing)."""
        c = self._load(payload)
        t0 = time.perf_counter()
        ((s, a, records, keys),) = c.run([shard])
        c.shards += 1
        c.compute_s += time.perf_counter() - t0
        return s, a, records, keys, {"shards": c.shards, "compute_s": c.compute_s, "teacher_s": c.teacher_s}


class TimedComputer(ShardComputer):
    """A :class:`ShardComputer` that counts where a worker's time goes, for ``run_stats["profile"]``."""

    shards, compute_s, teacher_s = 0, 0.0, 0.0

    def _forward(self, views: torch.Tensor, first_record: int) -> torch.Tensor:
        t0 = time.perf_counter()
        try:
            return super()._forward(views, first_record)  # ends on a host sync (the finiteness check)
        finally:
            self.teacher_s += time.perf_counter() - t0


def _node() -> str:
    import ray  # the optional Ray extra (drkit[ray]): imported where it is used

    return ray.util.get_node_ip_address()

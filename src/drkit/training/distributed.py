"""Data-parallel training under ``torchrun``: the process group, each rank's device, rank-0 duties.

``torchrun --nproc_per_node N -m drkit train ...`` starts N processes with ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and the rendezvous address in their environment. :func:`process_group_from_env`
turns that environment into a ``torch.distributed`` process group (NCCL for CUDA, gloo otherwise)
and tears it down afterwards; :class:`~drkit.training.loop.Trainer` sees an initialised group and
trains with ``DistributedDataParallel`` and a ``DistributedSampler``. Without ``torchrun`` (no
``WORLD_SIZE``, or 1) nothing here does anything, so the same code runs on one process.

A group the caller initialised (a user's own ``init_process_group``) is used as it is and left
for the caller to destroy.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..errors import ConfigError
from ..inference import best_device

__all__ = ["DistContext", "active", "world", "rank_device", "launch_rank", "process_group_from_env", "barrier",
           "broadcast_json", "broadcast_buffers", "all_reduce_sum"]

log = logging.getLogger(__name__)

_groups_made = 0  # process groups made by process_group_from_env in this process
_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a data-parallel run (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files, evaluates and shows progress."""
        return self.rank == 0


def active() -> bool:
    """Whether an initialised process group of more than one process exists."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world() -> DistContext:
    """This process's place in the initialised group (rank 0 of 1 without one)."""
    if not active():
        return DistContext()
    return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def rank_device(device: str | torch.device | None) -> torch.device:
    """This rank's device: ``cuda`` means ``cuda:LOCAL_RANK`` in a group (one GPU per process, as
    ``torchrun --nproc_per_node`` = GPUs per node), an explicit ``cuda:K`` is kept, the rest as given
    (default: the best available)."""
    dev = torch.device(device) if device is not None else best_device()
    if dev.type == "cuda" and dev.index is None and active():
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return dev


def launch_rank() -> int:
    """This process's rank as the launcher set it (``RANK``; 0 without torchrun), valid before and
    after the process group: the CLI prints its result on rank 0 only."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def _env_world_size() -> int:
    raw = os.environ.get("WORLD_SIZE", "1")
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"WORLD_SIZE={raw!r} is not a number; launch with torchrun --nproc_per_node N") from None


@contextmanager
def process_group_from_env(device: str | torch.device | None = None) -> Iterator[DistContext]:
    """A process group for the duration of the block when launched by ``torchrun`` (``WORLD_SIZE``
    > 1): NCCL when this rank trains on CUDA, gloo otherwise (CPU; also MPS, which has no collective
    backend). Yields this process's :class:`DistContext`; destroys the group it made on the way out,
    also after an error. Without torchrun's environment, or inside a group that already exists, it
    makes none."""
    if dist.is_available() and dist.is_initialized():
        yield world()  # the caller's group: theirs to destroy
        return
    if _env_world_size() <= 1:
        yield DistContext()
        return
    missing = [k for k in _ENV if k not in os.environ]
    if missing:
        raise ConfigError(f"WORLD_SIZE > 1 but {', '.join(missing)} not set: launch with torchrun --nproc_per_node N")
    if not dist.is_available():
        raise ConfigError("this torch build has no torch.distributed; train on one process (no torchrun)")
    dev = torch.device(device) if device is not None else best_device()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if dev.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA devices: start at "
                              "most one process per GPU (torchrun --nproc_per_node)")
        torch.cuda.set_device(local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    # torchrun's store outlives a group: a second group in this process (train_run called again by
    # a script) must not read the first one's addresses, so each group gets its own key prefix;
    # every rank runs the same program, so the count agrees across ranks
    global _groups_made
    store, rank, size = next(dist.rendezvous("env://"))
    dist.init_process_group(backend=backend, store=dist.PrefixStore(f"drkit/{_groups_made}", store),
                            rank=rank, world_size=size)
    _groups_made += 1
    ctx = world()
    log.info("process group: rank %d of %d (local rank %d), %s", ctx.rank, ctx.world_size, ctx.local_rank, backend)
    try:
        yield ctx
    finally:
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op on one process)."""
    if active():
        dist.barrier()


def broadcast_json(value: Any, device: torch.device, src: int = 0) -> Any:
    """``value`` (JSON-serialisable) as rank ``src`` has it, on every rank; no-op on one process.
    Sent as JSON bytes in a uint8 tensor: nothing is unpickled (DESIGN.md: no pickle anywhere)."""
    if not active():
        return value
    where = device if dist.get_backend() == "nccl" else torch.device("cpu")
    data = json.dumps(value).encode() if dist.get_rank() == src else b""
    size = torch.tensor([len(data)], dtype=torch.int64, device=where)
    dist.broadcast(size, src=src)
    buf = (torch.frombuffer(bytearray(data), dtype=torch.uint8).to(where) if data
           else torch.empty(int(size.item()), dtype=torch.uint8, device=where))
    dist.broadcast(buf, src=src)
    return json.loads(bytes(buf.cpu().numpy()).decode())


def broadcast_buffers(model: torch.nn.Module, src: int = 0) -> None:
    """Make every rank's buffers (BatchNorm running statistics) those of rank ``src``."""
    if active():
        for b in model.buffers():
            dist.broadcast(b.data, src=src)


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sums over the ranks of ``values`` (float64; no-op on one process). ``device``:
    this rank's training device (NCCL reduces CUDA tensors only)."""
    if not active():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t)
    return t.tolist()

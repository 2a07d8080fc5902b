"""The distributed engine: reinforcement shards computed by Ray actors, written by the driver.

Same store, byte for byte, as the local engine (:func:`drkit.reinforce`): both start from the
same :class:`~drkit.reinforcement.RunPlan` (settings, fingerprint, resume check), compute a shard
with the same :class:`~drkit.reinforcement.ShardComputer` (teacher in fixed ``teacher_batch`` chunks
from the shard's start) and write it through the same :class:`~drkit.reinforcement.StoreSession`.

Data flow::

    driver: plan_run -> probe teacher -> ray.put(dataset), ray.put(teacher specs)
    actors (one per worker, --cpus-per-worker / --gpus-per-worker each; ray_worker.ShardWorker):
        load dataset, policy and teacher ONCE, pin torch threads, then compute(shard) -> record array
    driver: ray.wait -> StoreSession.add (atomic shard + manifest), in completion order

No shared filesystem is needed: shards travel back to the driver as arrays through Ray's object
store, and only the driver touches ``out``. Teachers given as spec strings are loaded by each
actor (checkpoint paths must be readable on every node; the actor checks that its weights hash to
what the driver loaded); ``nn.Module`` teachers and in-memory datasets are shipped by value.

Failures: Ray restarts a dead actor (``max_restarts``, on another node if its node is gone), and
the driver hands the shards that actor held to whoever is ready, up to ``shard_attempts`` times
per shard. Interrupting the driver loses only the shards in flight: rerun to resume. When nothing
is left to hand out, an idle worker takes a copy of a shard still queued behind another's running
one (the first copy back is written). ``run_stats["profile"]`` says where the time went.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from .._progress import progress_bar
from ..data import ImageDataset
from ..errors import ConfigError, DrkitError
from .compute import ShardComputer
from .config import ReinforceConfig
from .plan import open_complete, plan_run
from .ray_worker import ShardWorker
from .session import StoreSession
from .store import Store

__all__ = ["RayOptions", "reinforce_on_ray"]

log = logging.getLogger(__name__)

_DEPTH = 2  # shards queued per actor, so it starts the next while the driver writes the last


@dataclass
class RayOptions:
    """Where and on what the Ray engine runs. Nothing here is recorded in the store."""

    address: str | None = field(default=None, metadata={"help": "Ray cluster: HOST:PORT of `ray start --head`, ray://HOST:10001 or auto (default: $RAY_ADDRESS, a cluster started on this machine, else a new local instance)"})
    workers: int | None = field(default=None, metadata={"help": "Ray workers (actors, each loads the teacher once); default: as many as the cluster fits"})
    gpus_per_worker: float = field(default=0.0, metadata={"help": "GPUs per worker (fractions share a GPU); > 0 runs the teacher on CUDA"})
    cpus_per_worker: int = field(default=1, metadata={"help": "CPUs per worker: its torch threads, and DataLoader workers when --num-workers is -1 (CPUs - 1)"})
    max_restarts: int = 4  # times Ray restarts a worker that died (-1: forever)
    shard_attempts: int = 3  # a shard whose worker died this many times fails the run
    runtime_env: dict[str, Any] | None = None  # Ray runtime_env of the workers (py_modules, env_vars, ...)

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers <= 0:
            raise ConfigError(f"workers must be a positive integer, got {self.workers}")
        if self.gpus_per_worker < 0:
            raise ConfigError(f"gpus_per_worker must be >= 0, got {self.gpus_per_worker}")
        if self.cpus_per_worker <= 0:
            raise ConfigError(f"cpus_per_worker must be a positive integer, got {self.cpus_per_worker}")
        if self.shard_attempts <= 0:
            raise ConfigError(f"shard_attempts must be a positive integer, got {self.shard_attempts}")

    @property
    def device(self) -> torch.device:
        return torch.device("cuda" if self.gpus_per_worker > 0 else "cpu")


def _import_ray() -> Any:
    try:
        import ray  # the optional Ray extra (drkit[ray]): imported where it is used
    except ImportError as e:
        raise ConfigError("the Ray engine needs Ray: pip install 'drkit[ray]' (or pip install 'ray[default]')") from e
    return ray


def _connect(ray: Any, options: RayOptions) -> bool:
    """Connect to (or start) Ray; True when this call started the connection."""
    if ray.is_initialized():
        if options.address:
            log.info("already connected to Ray: --address %s is not used", options.address)
        return False
    try:
        ray.init(address=options.address, include_dashboard=False, logging_level=logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise ConfigError(f"cannot connect to Ray at {options.address or '$RAY_ADDRESS/local'}: {e}. Start the "
                          "cluster with `ray start --head` and pass its HOST:PORT to --address") from e
    return True


def _count_workers(ray: Any, options: RayOptions) -> int:
    res = ray.cluster_resources()
    cpus, gpus = float(res.get("CPU", 0)), float(res.get("GPU", 0))
    fit = int(cpus // options.cpus_per_worker)
    if options.gpus_per_worker > 0:
        fit = min(fit, int(gpus // options.gpus_per_worker))
    if fit == 0:
        raise ConfigError(
            f"the Ray cluster has {cpus:g} CPUs and {gpus:g} GPUs: not enough for one worker with "
            f"{options.cpus_per_worker} CPUs and {options.gpus_per_worker:g} GPUs; lower "
            "--cpus-per-worker/--gpus-per-worker or add nodes (`ray start --address HEAD:6379`)"
        )
    n = options.workers or fit
    if n > fit:
        log.warning("%d workers asked, the cluster fits %d now: the others start when nodes join", n, fit)
    return n


def _reraise(e: Any) -> None:
    """A worker's own drkit error (wrong-width teacher, unreadable data) as itself."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, DrkitError):
        raise cause from None
    raise e


def reinforce_on_ray(
    data: str | ImageDataset | Dataset,
    teachers: str | nn.Module | Sequence[str | nn.Module],
    out: str | os.PathLike[str],
    config: ReinforceConfig,
    *,
    options: RayOptions | None = None,
    progress: bool = True,
    download: bool = False,
) -> Store:
    """:func:`drkit.reinforce` with ``engine="ray"``: the same store, computed by Ray workers.

    The driver (this process) loads the dataset and teachers once to check settings and probe
    the teacher, then ships them to ``options.workers`` actors and writes the shards they return.
    """
    options = options or RayOptions()
    ray = _import_ray()
    if config.device and torch.device(config.device).type != options.device.type:
        raise ConfigError(
            f"--device {config.device} does not match the Ray workers' device ({options.device.type}): "
            "set --gpus-per-worker > 0 for cuda, 0 for cpu"
        )
    plan = plan_run(data, teachers, out, config, device=options.device, download=download)
    if plan.complete:
        return open_complete(plan)
    # the teacher's width and finiteness, on the driver's CPU, before anything is written
    ShardComputer(plan.dataset, plan.policy, plan.teacher, plan.dtype, config, torch.device("cpu")).probe()

    started = _connect(ray, options)
    actors: list[Any] = []
    session: StoreSession | None = None
    try:
        n = _count_workers(ray, options)
        session = StoreSession(plan)
        if not session.pending:
            return session.finish(0.0, engine="ray", workers=0)
        n = min(n, len(session.pending))
        members = [teachers] if isinstance(teachers, (str, nn.Module)) else list(teachers)
        worker_config = dataclasses.replace(
            config, device=None,
            num_workers=config.num_workers if config.num_workers >= 0 else options.cpus_per_worker - 1)
        args = (plan.policy.config, plan.dtype, worker_config, plan.settings, plan.teacher_desc,
                options.device.type, options.cpus_per_worker)
        remote = ray.remote(ShardWorker).options(
            num_cpus=options.cpus_per_worker, num_gpus=options.gpus_per_worker,
            max_restarts=options.max_restarts, max_task_retries=0, runtime_env=options.runtime_env)
        t0, asked_at = time.perf_counter(), time.time()
        actors = [remote.remote(*args) for _ in range(n)]  # first: their processes start while we put the data
        payload = [ray.put(plan.dataset), ray.put(members)]  # once for all workers (one copy per node)
        profile = {"put_s": time.perf_counter() - t0, "asked_at": asked_at}
        log.info("Ray engine: %d workers (%d CPUs, %g GPUs each) for %d shards", n, options.cpus_per_worker,
                 options.gpus_per_worker, len(session.pending))
        bar = progress_bar(session.total, desc="reinforce (ray)", unit="img", enabled=progress)
        try:
            stats = _run_shards(ray, actors, payload, session, options, bar.update, t0=t0, profile=profile)
        finally:
            bar.close()
        return session.finish(time.perf_counter() - t0, engine="ray", workers=n, **stats)
    except BaseException:
        if session is not None:
            session.abort()
        raise
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)
        if started:
            ray.shutdown()


def _run_shards(ray: Any, actors: list[Any], payload: list[Any], session: StoreSession,
                options: RayOptions, on_progress: Any, *, t0: float, profile: dict[str, Any]) -> dict[str, Any]:
    """The submit/wait loop: each ready actor holds up to ``_DEPTH`` shards; results are written
    as they arrive; a shard whose actor died goes back to the queue. Returns the shards handed
    out again, when (seconds from ``t0``, when the actors were asked for) the last worker first
    became ready, the records written after that (for a start-up-free rate), and ``profile``
    completed with where the time went (:func:`_profile`)."""
    # the optional Ray extra (drkit[ray]): imported where it is used
    from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError

    queue = collections.deque(session.pending)
    probes: dict[Any, int] = {actors[i].ready.remote(payload): i for i in range(len(actors))}  # not ready yet
    reprobe: dict[int, float] = {}  # restarting actor -> when to ask again whether it is ready
    load: dict[int, int] = {}  # ready actor -> shards in flight
    inflight: dict[Any, tuple[int, tuple[int, int, int]]] = {}
    attempts: collections.Counter[int] = collections.Counter()
    retried, ready_s, started, after_ready = 0, 0.0, set(), 0
    backed: set[int] = set()  # shards given to a second worker at the tail (see below)
    workers: dict[int, dict[str, Any]] = {}  # ready info per worker, as it first (re)started
    driver = {"wait_s": 0.0, "get_s": 0.0, "write_s": 0.0}  # the driver's loop: idle, fetching, writing
    while queue or inflight:
        for i in list(load):
            while queue and load[i] < _DEPTH:
                shard = queue.popleft()
                if shard[0] in session.done:  # handed out again, and meanwhile written from another copy
                    continue
                inflight[actors[i].compute.remote(shard, payload)] = (i, shard)
                load[i] += 1
        # The tail: with nothing left to hand out, a worker that went idle takes a copy of a shard still
        # queued behind another worker's running one, instead of waiting for it (records are
        # deterministic, the first copy back is written and the other dropped: same bytes, sooner).
        for i in [i for i in load if load[i] == 0] if not queue else []:
            shard = _waiting_shard(inflight, load, backed)
            if shard is None:
                break
            backed.add(shard[0])
            inflight[actors[i].compute.remote(shard, payload)] = (i, shard)
            load[i] += 1
        for i, at in list(reprobe.items()):
            if time.monotonic() >= at:
                del reprobe[i]
                probes[actors[i].ready.remote(payload)] = i
        if not inflight and not probes and not reprobe:
            raise DrkitError("every Ray worker died and none could be restarted; the complete shards are "
                             "kept: check the cluster (`ray status`) and rerun the same command to resume")
        refs = [*inflight, *probes]
        tw = time.perf_counter()
        done, _ = ray.wait(refs, num_returns=1, timeout=0.5 if reprobe else None) if refs else ([], [])
        driver["wait_s"] += time.perf_counter() - tw
        if not done:
            time.sleep(0.1 if not refs else 0)
            continue
        ref = done[0]
        if ref in probes:
            i = probes.pop(ref)
            try:
                info = ray.get(ref)
            except RayTaskError as e:
                _reraise(e)
            except ActorUnavailableError:  # Ray is restarting it
                reprobe[i] = time.monotonic() + 1.0
                continue
            except RayActorError as e:
                log.warning("Ray worker %d is given up (Ray could not restart it): %s", i, e)
                continue
            log.info("Ray worker %d ready: %s", i, info)
            load[i] = 0
            if i not in started:  # start-up, not a restart
                started.add(i)
                ready_s = time.perf_counter() - t0
                workers[i] = {**info, "ready_s": ready_s, "restarted_on": []}
            else:
                workers[i]["restarted_on"].append(info["node"])
            continue
        i, shard = inflight.pop(ref)
        if i in load:
            load[i] -= 1
        tg = time.perf_counter()
        try:
            s, a, records, keys, counts = ray.get(ref)
        except RayTaskError as e:
            _reraise(e)
        except RayActorError as e:
            # ActorUnavailableError: handed to an actor that was restarting; it did not crash on it
            attempts[shard[0]] += not isinstance(e, ActorUnavailableError)
            if attempts[shard[0]] >= options.shard_attempts:
                raise DrkitError(
                    f"shard {shard[0]} failed {attempts[shard[0]]} times because its Ray worker died ({e}); "
                    "the complete shards are kept: fix the cause (memory? a dead node?) and rerun to resume"
                ) from None
            log.warning("Ray worker %d died while computing shard %d; handing it out again", i, shard[0])
            queue.appendleft(shard)
            retried += 1
            if i in load:  # wait until Ray has restarted it (or given it up)
                del load[i]
                reprobe[i] = time.monotonic()
            continue
        tw = time.perf_counter()
        driver["get_s"] += tw - tg
        workers[i].update(counts)
        if s in session.done:  # a copy of a shard already written
            continue
        session.add(s, a, records, keys)
        driver["write_s"] += time.perf_counter() - tw
        for other in [r for r, (_, sh) in inflight.items() if sh[0] == s]:  # its other copy: not waited for
            j, _ = inflight.pop(other)
            if j in load:
                load[j] -= 1
        on_progress(records.size)
        after_ready += records.size if len(started) == len(actors) else 0
    profile.update(_profile(workers, driver, seconds=time.perf_counter() - t0, asked_at=profile.pop("asked_at")))
    return {"shards_retried": retried, "shards_backed_up": len(backed), "workers_ready_s": ready_s,
            "records_after_ready": after_ready, "profile": profile}


def _waiting_shard(inflight: dict[Any, tuple[int, tuple[int, int, int]]], load: dict[int, int],
                   skip: set[int]) -> tuple[int, int, int] | None:
    """A shard queued behind another one on its worker (the worker's last handed out, while it holds
    ``_DEPTH``), not in ``skip``; None if there is none."""
    last: dict[int, tuple[int, int, int]] = {}
    for i, shard in inflight.values():  # in the order handed out
        last[i] = shard
    for i, shard in last.items():
        if load.get(i, 0) >= _DEPTH and shard[0] not in skip:
            return shard
    return None


def _profile(workers: dict[int, dict[str, Any]], driver: dict[str, float], *, seconds: float,
             asked_at: float) -> dict[str, Any]:
    """Where a run's time went, per worker and on the driver (``run_stats["profile"]``): a worker's
    ``boot_s`` (its process started and imported drkit), ``fetch_s`` (dataset and teachers out of
    the object store), ``load_s`` (teachers built and checked) add up to about its ``ready_s``; after
    that it was ``compute_s`` computing (``teacher_s`` of it in the teacher's forward) and ``idle_s``
    waiting for work (``idle_s`` only for a worker that never restarted: a restarted one counts
    anew, a dead one as of its last shard returned; a copy dropped at the tail never reports, so
    its time shows as idle)."""
    rows = []
    for i in sorted(workers):
        w = {k: v for k, v in workers[i].items() if k != "created_at"}
        w["boot_s"] = max(0.0, workers[i]["created_at"] - asked_at)  # wall clocks of two processes (or nodes)
        if "compute_s" in w and not w["restarted_on"]:
            w["idle_s"] = max(0.0, seconds - w["ready_s"] - w["compute_s"])
        rows.append({"worker": i, **w})
    return {"seconds": seconds, "workers": rows, "driver": driver}

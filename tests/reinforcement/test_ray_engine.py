"""The Ray engine writes the local engine's store byte for byte, survives a worker killed mid-run,
and resumes after its driver is killed (also across engines). One local Ray instance
(``ray.init(num_cpus=2)``) serves the whole module."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from _ray_teachers import Watched, tiny
from conftest import cli_reinforce_args, kill_cli_when, snapshot

import drkit
from drkit.cli.main import main
from drkit.errors import ConfigError, StoreError, TeacherError
from drkit.reinforcement.ray_engine import RayOptions, _waiting_shard

TESTS = Path(__file__).parents[1]
# 160 digits in 10 shards of 16 samples × 4 augmentations; teacher chunks of 24 records
RUN = {"policy": "randaugment+mixing", "num_augs": 4, "topk": 3, "shard_size": 16, "teacher_batch": 24,
       "batch_size": 16, "num_workers": 0, "progress": False}


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray instance with 2 CPUs; its workers import ``tests/`` helpers (PYTHONPATH is
    inherited from the process that starts Ray)."""
    ray = pytest.importorskip("ray")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def digits160() -> drkit.ImageDataset:
    return drkit.load_dataset("digits").subset(np.arange(160), name="digits160")


@pytest.fixture(scope="module")
def reference(digits160, tmp_path_factory) -> dict[str, bytes]:
    """The local engine's store (every file, manifest included) with the ``Watched`` tiny teacher."""
    root = tmp_path_factory.mktemp("reference")
    drkit.reinforce(digits160, Watched(tiny(), root), root / "store", **RUN)
    return snapshot(root / "store")


def _pids(piddir: Path) -> set[int]:
    return {int(p.name) for p in piddir.iterdir()} - {os.getpid()}  # the driver probes the teacher too


def test_ray_store_is_byte_identical_to_local(ray_address, digits160, reference, tmp_path):
    piddir = tmp_path / "pids"
    piddir.mkdir()
    store = drkit.reinforce(digits160, Watched(tiny(), piddir), tmp_path / "ray", engine="ray",
                            ray_options=RayOptions(workers=2), **RUN)
    assert snapshot(store.root) == reference
    assert store.run_stats["engine"] == "ray" and store.run_stats["workers"] == 2
    assert store.run_stats["shards_retried"] == 0
    assert _pids(piddir)  # computed by worker processes (usually both; one may finish before the other starts)
    profile = store.run_stats["profile"]  # where the time went: every shard counted once, parts within wholes
    workers = profile["workers"]
    assert sum(w["shards"] for w in workers) == 10 and {w["threads"] for w in workers} == {1}
    for w in workers:
        assert 0 <= w["teacher_s"] <= w["compute_s"] <= profile["seconds"] and w["ready_s"] <= profile["seconds"]
        assert w["fetch_s"] >= 0 and w["load_s"] > 0 and w["boot_s"] >= 0 and w["idle_s"] >= 0
    assert 0 < profile["driver"]["write_s"] < profile["seconds"] and profile["put_s"] >= 0
    # rerunning a complete store computes nothing, whatever the engine
    again = drkit.reinforce(digits160, Watched(tiny(), piddir), tmp_path / "ray", engine="ray", **RUN)
    assert again.run_stats["records_computed"] == 0


def test_worker_killed_mid_run_still_gives_the_identical_store(ray_address, digits160, reference, tmp_path):
    piddir, out = tmp_path / "pids", tmp_path / "ray"
    piddir.mkdir()
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["store"] = drkit.reinforce(digits160, Watched(tiny(), piddir, seconds=0.15), out, engine="ray",
                                              ray_options=RayOptions(workers=2), **RUN)
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            result["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 180  # generous: Ray starts its workers slowly on a loaded machine
    while time.monotonic() < deadline and not (len(_pids(piddir)) == 2 and list(out.glob("shard-*.npy"))):
        time.sleep(0.01)
    first = _pids(piddir)
    assert first, "no Ray worker computed a record within 180 s"
    victim = min(first)
    os.kill(victim, signal.SIGKILL)  # a worker process dies with shards in flight
    shards_when_killed = len(list(out.glob("shard-*.npy")))
    thread.join(timeout=90)
    assert not thread.is_alive() and "error" not in result, result.get("error")
    store = result["store"]
    assert shards_when_killed < 10, "the run finished before the kill: the test proves nothing"
    assert store.run_stats["shards_retried"] >= 1  # the dead worker's shards were handed out again
    assert snapshot(out) == reference  # nothing lost, nothing duplicated


def test_interrupted_local_run_resumes_on_ray(ray_address, digits160, reference, tmp_path):
    out = tmp_path / "store"
    with pytest.raises(KeyboardInterrupt):  # forward 1 is the probe; 3 forwards per shard
        drkit.reinforce(digits160, Watched(tiny(), tmp_path, interrupt_at=8), out, **RUN)
    assert 0 < len(list(out.glob("shard-*.npy"))) < 10
    with pytest.raises(StoreError, match="incomplete"):
        drkit.Store.open(out)
    store = drkit.reinforce(digits160, Watched(tiny(), tmp_path), out, engine="ray", **RUN)
    assert 0 < store.run_stats["records_computed"] < 640
    assert snapshot(out) == reference


@pytest.mark.slow
def test_killed_ray_driver_resumes_on_either_engine(ray_address, digits160, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    data = tmp_path / "digits160.npz"
    np.savez(data, x=digits160.images[:, 0], y=digits160.labels)
    reference, out = tmp_path / "reference", tmp_path / "ray"
    assert main(cli_reinforce_args(f"npz:{data}", reference)) == 0  # local engine

    killed = kill_cli_when(cli_reinforce_args(f"npz:{data}", out, "--engine", "ray", "--address", ray_address,
                                         "--workers", "2"), out, 2)
    print("shards on disk when the driver was killed:", killed)
    assert 2 <= killed < 10, "the run finished before it could be killed: the test proves nothing"
    with pytest.raises(StoreError, match="incomplete"):
        drkit.Store.open(out)
    shutil.copytree(out, tmp_path / "local")
    assert main(cli_reinforce_args(f"npz:{data}", out, "--engine", "ray")) == 0  # reuses this process's Ray
    assert main(cli_reinforce_args(f"npz:{data}", tmp_path / "local")) == 0  # a Ray-started store, finished locally
    for resumed in (out, tmp_path / "local"):
        assert not list(resumed.glob("*.tmp"))
        assert snapshot(resumed) == snapshot(reference)


def test_worker_error_is_drkits_own_and_leaves_nothing(ray_address, digits160, tmp_path):
    out = tmp_path / "store"
    with pytest.raises(TeacherError, match="other weights on worker"):  # random weights in each process
        drkit.reinforce(digits160, "python:_ray_teachers:unseeded", out, engine="ray",
                        ray_options=RayOptions(workers=1), **RUN)
    assert not out.exists()


def test_options_are_checked(ray_address, digits160, tmp_path, capsys):
    with pytest.raises(ConfigError, match="GPUs"):  # this cluster has none
        drkit.reinforce(digits160, tiny(), tmp_path / "a", engine="ray",
                        ray_options=RayOptions(gpus_per_worker=1), **RUN)
    assert not (tmp_path / "a").exists()
    with pytest.raises(ConfigError, match="workers must be a positive"):
        RayOptions(workers=0)
    with pytest.raises(ConfigError, match="does not match the Ray workers"):
        drkit.reinforce(digits160, tiny(), tmp_path / "b", engine="ray", **{**RUN, "device": "cuda"})
    assert main(["reinforce", "digits", "--teacher", "python:_ray_teachers:tiny", "--workers", "2",
                 "--out", str(tmp_path / "c")]) == 1
    assert "need --engine ray" in capsys.readouterr().err


def test_missing_ray_is_a_clear_error(digits160, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'drkit\[ray\]'"):
        drkit.reinforce(digits160, tiny(), tmp_path / "s", engine="ray", **RUN)


def test_the_tail_copies_only_a_shard_queued_behind_another():
    # worker 0 runs shard 3 with shard 5 queued behind it; worker 1 runs shard 4 alone
    inflight = {"r3": (0, (3, 48, 64)), "r4": (1, (4, 64, 80)), "r5": (0, (5, 80, 96))}
    assert _waiting_shard(inflight, {0: 2, 1: 1}, set()) == (5, 80, 96)
    assert _waiting_shard(inflight, {0: 2, 1: 1}, {5}) is None  # at most one copy of a shard
    assert _waiting_shard(inflight, {0: 1, 1: 1}, set()) is None  # nothing waits: nothing to copy

"""The Ray engine across two nodes: a head and a worker node of a ``ray.cluster_utils.Cluster`` on
this machine (each its own raylet, object store and 1 CPU, so the two drkit workers of 1 CPU land
one on each), the driver a ``drkit reinforce --engine ray --address HEAD`` process. The worker
node's raylet is killed part way; the store must still complete, byte-identical to the local
engine's. Bounded in time: the driver runs in a child process with a hard deadline."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import snapshot

import drkit
from drkit.cli.main import main

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")  # installed with ray[default]
from ray.cluster_utils import Cluster  # noqa: E402 - after the skip: only with Ray

TESTS = Path(__file__).parents[1]
DEADLINE_S = 150.0  # hard bound on the driver; a run takes 20-40 s on 2 busy cores


def _args(data: Path, out: Path, *extra: str) -> list[str]:
    """160 digits in 10 shards of 16 samples x 2 augmentations, 2 teacher forwards per shard (cropflip:
    the cheapest policy, as the engine's handling of shards does not depend on it)."""
    return ["reinforce", f"npz:{data}", "--teacher", "python:_cluster_teachers:watched", "--policy", "cropflip",
            "--num-augs", "2", "--topk", "3", "--shard-size", "16", "--teacher-batch", "24", "--batch-size", "16",
            "--num-workers", "0", "--device", "cpu", "--out", str(out), *extra]


def _computing(piddir: Path, driver: int) -> set[int]:
    return {int(p.name) for p in piddir.iterdir()} - {driver, os.getpid()}  # the driver probes the teacher


def test_store_completes_identical_after_losing_a_node(tmp_path, monkeypatch):
    data, piddir, out = tmp_path / "digits160.npz", tmp_path / "pids", tmp_path / "ray"
    piddir.mkdir()
    digits = drkit.load_dataset("digits")
    np.savez(data, x=digits.images[:160, 0], y=digits.labels[:160])
    # tests/ on the path of every process (Ray nodes inherit it from here), where the teacher's module is
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("DRKIT_TEST_PIDDIR", str(piddir))
    monkeypatch.syspath_prepend(str(TESTS))
    assert main([*_args(data, tmp_path / "local"), "-q"]) == 0  # the reference: the local engine
    reference = snapshot(tmp_path / "local")

    monkeypatch.setenv("DRKIT_TEST_SECONDS", "0.25")  # ~0.6 s a shard: time to kill a node part way
    monkeypatch.setenv("DRKIT_TEST_WORKERS", "2")  # a worker's first forward waits for the other's
    # detect a dead node within ~1.5 s instead of Ray's default ~30 s
    system = {"health_check_period_ms": 500, "health_check_timeout_ms": 500, "health_check_failure_threshold": 3}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                            "_system_config": system})
    driver = None
    try:
        # The driver starts before the worker node joins (it asks for 2 workers; the cluster fits 1 until
        # then): its start and the node's overlap, as on a cluster whose nodes come up as the run begins.
        driver = subprocess.Popen([sys.executable, "-m", "drkit.cli", *_args(data, out, "--engine", "ray",
                                   "--address", cluster.address, "--workers", "2", "--json", "-q")],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + DEADLINE_S
        node = cluster.add_node(num_cpus=1)
        raylet = node.all_processes["raylet"][0].process.pid
        victim = None
        while time.monotonic() < deadline and driver.poll() is None and victim is None:
            computing = _computing(piddir, driver.pid)
            on_node = [p for p in computing if psutil.pid_exists(p)
                       and psutil.Process(p).ppid() == raylet]  # a Ray worker's parent is its node's raylet
            if on_node and len(computing) == 2 and list(out.glob("shard-*.npy")):
                victim = on_node[0]
            time.sleep(0.01)
        assert victim is not None, f"both nodes were not computing within {DEADLINE_S:.0f} s"
        cluster.remove_node(node, allow_graceful=False)  # SIGKILL: the raylet and its workers die
        shards_when_killed = len(list(out.glob("shard-*.npy")))
        while psutil.pid_exists(victim) and psutil.Process(victim).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the killed node's Ray worker is still running"
            time.sleep(0.05)  # the node's Ray workers exit once they see their raylet gone
        stdout, stderr = driver.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if driver is not None and driver.poll() is None:
            driver.kill()
        cluster.shutdown()
    assert driver.returncode == 0, stderr
    stats = json.loads(stdout[re.search(r"^\{$", stdout, re.M).start():])["run_stats"]  # after Ray's own lines
    assert shards_when_killed < 10, "the run finished before the node died: the test proves nothing"
    assert len({w["node"] for w in stats["profile"]["workers"]}) == 2  # the workers ran on both nodes
    assert stats["shards_retried"] >= 1  # the lost node's shards were handed out again
    assert snapshot(out) == reference  # every shard and the manifest: nothing lost, nothing duplicated

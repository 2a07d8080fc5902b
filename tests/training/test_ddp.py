"""``drkit train`` under torchrun: two gloo processes on CPU train one model on disjoint halves.

One launch of ``python -m torch.distributed.run --nproc_per_node 2`` (``_ddp_worker.py``) runs the
CLI's ``train`` three times: DR on a tiny store (stopped after its first epoch, then resumed) and
ERM. Process start-up (two ranks importing torch on a 2-core machine) is most of its ~15 s.
"""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import drkit
from drkit.errors import ConfigError
from drkit.models import SmallCNN
from drkit.training import distributed

WORKER = Path(__file__).with_name("_ddp_worker.py")


def test_without_torchrun_there_is_no_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with distributed.process_group_from_env("cpu") as ctx:
        assert ctx == distributed.DistContext() and ctx.is_main and not distributed.active()
        assert distributed.all_reduce_sum([1.0, 2.0], torch.device("cpu")) == [1.0, 2.0]
        assert distributed.broadcast_json({"a": 1}, torch.device("cpu")) == {"a": 1}


def test_a_half_set_torchrun_environment_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(ConfigError, match="MASTER_ADDR.*torchrun"):
        with distributed.process_group_from_env("cpu"):
            pass
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ConfigError, match="WORLD_SIZE"):
        with distributed.process_group_from_env("cpu"):
            pass


def test_torchrun_two_ranks_train_one_model_on_disjoint_halves(tmp_path, _digits_train):
    data = tmp_path / "d64.npz"
    sub = _digits_train.subset(np.arange(64))
    np.savez(data, images=np.stack([sub.image(i).numpy() for i in range(64)]), labels=sub.labels)
    torch.manual_seed(0)
    store = drkit.reinforce(f"npz:{data}", SmallCNN(1, 10, width=4), tmp_path / "store", num_augs=2, topk=3,
                            num_workers=0, device="cpu", progress=False)
    out = tmp_path / "runs"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(WORKER),
                        f"npz:{data}", str(store.root), str(out)],
                       env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [json.loads((out / f"rank{k}.json").read_text()) for k in (0, 1)]
    assert [k["codes"] for k in ranks] == [[0, 0], [0, 0]]
    # one run folder per run, written by rank 0 alone; one printed result per run (rank 0's)
    assert sorted(p.name for p in out.iterdir()) == ["dr", "erm", "rank0.json", "rank1.json"]
    assert ranks[0]["saves"] == [1, 2, 1] and ranks[1]["saves"] == []
    assert r.stdout.count('"complete": true') == 2
    # per epoch (dr 1, dr 2 after the resume, erm 1): the two ranks' items are disjoint halves of all 64
    assert len(ranks[0]["seen"]) == 3
    for a, b in zip(ranks[0]["seen"], ranks[1]["seen"], strict=True):
        assert len(a) == len(b) == 32 and not set(a) & set(b) and set(a) | set(b) == set(range(64))
    assert ranks[0]["seen"][0] != ranks[0]["seen"][1]  # set_epoch reached the sampler
    # gradients were all-reduced: after every epoch both ranks hold the same weights and buffers
    assert ranks[0]["model"] == ranks[1]["model"]
    for name in ("dr", "erm"):
        m = json.loads((out / name / "metrics.json").read_text())
        assert m["complete"] and m["config"]["world_size"] == 2
        assert all(e["world_size"] == 2 and e["samples"] == 64 for e in m["epochs"])
        assert sorted(p.name for p in (out / name).iterdir()) == [
            "checkpoint.json", "checkpoint.safetensors", "config.json", "metrics.json", "model.safetensors"]
    dr = json.loads((out / "dr" / "metrics.json").read_text())
    assert [e["epoch"] for e in dr["epochs"]] == [0, 1]  # resumed after epoch 0, not restarted
    weights = drkit.training.load_run_model(out / "dr")[0].state_dict()
    assert all(torch.isfinite(v.float()).all() for v in weights.values())


def test_python_m_drkit_is_the_cli(monkeypatch, capsys):
    """``torchrun -m drkit`` needs ``drkit/__main__.py`` (run here in-process: no new interpreter)."""
    monkeypatch.setattr(sys, "argv", ["drkit", "--version"])
    with pytest.raises(SystemExit) as e:
        runpy.run_module("drkit", run_name="__main__")
    assert e.value.code == 0 and capsys.readouterr().out.startswith("drkit ")

"""benchmarks/fmnist_plus/time_ratio.py: DR / KD training time by teacher size, from untrained teachers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.fmnist_plus import time_ratio

ROOT = Path(__file__).resolve().parents[2]  # python -m benchmarks... runs from the repository root


def test_warm_seconds_skip_the_first_epoch_unless_it_is_the_only_one():
    assert time_ratio.warm_seconds({"epochs": [{"seconds": 9.0}, {"seconds": 2.0}, {"seconds": 3.0}]}) == 5.0
    assert time_ratio.warm_seconds({"epochs": [{"seconds": 4.0}]}) == 4.0


def test_summary_divides_dr_by_each_teachers_kd_and_averages_over_students():
    rows = [{"student": "a", "mode": "erm", "teacher": None, "seconds": 10.0},
            {"student": "a", "mode": "dr", "teacher": None, "seconds": 12.0},
            {"student": "a", "mode": "kd", "teacher": "t1", "seconds": 24.0},
            {"student": "a", "mode": "kd", "teacher": "t2", "seconds": 48.0},
            {"student": "b", "mode": "erm", "teacher": None, "seconds": 4.0},
            {"student": "b", "mode": "dr", "teacher": None, "seconds": 4.0},
            {"student": "b", "mode": "kd", "teacher": "t1", "seconds": 5.0},
            {"student": "b", "mode": "kd", "teacher": "t2", "seconds": 16.0}]
    s = time_ratio.summarise(rows, ["t1", "t2"])
    assert s["per_student"]["a"]["dr_over_erm"] == pytest.approx(1.2)
    assert s["per_student"]["a"]["dr_over_kd"] == pytest.approx({"t1": 0.5, "t2": 0.25})
    assert s["mean_dr_over_kd"] == pytest.approx({"t1": (0.5 + 0.8) / 2, "t2": (0.25 + 0.25) / 2})


def test_script_times_every_arm_and_writes_the_table(tmp_path):
    out = tmp_path / "tr"
    r = subprocess.run([sys.executable, "-m", "benchmarks.fmnist_plus.time_ratio", "--out", str(out),
                        "--data", "digits", "--students", "smallcnn-4", "--teachers", "smallcnn-4,smallcnn-8",
                        "--members", "2", "--images", "60", "--epochs", "2", "--batch-size", "16", "--device", "cpu"],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((out / "time_ratio.json").read_text())
    assert [(row["mode"], row["teacher"]) for row in res["rows"]] == [
        ("erm", None), ("dr", None), ("kd", "smallcnn-4"), ("kd", "smallcnn-8")]
    assert all(row["seconds"] > 0 for row in res["rows"])
    assert set(res["mean_dr_over_kd"]) == {"smallcnn-4", "smallcnn-8"}
    assert res["parameters"]["smallcnn-8"] > res["parameters"]["smallcnn-4"]
    assert not (out / "work").exists()  # the timed runs and the store are removed
    assert "| **mean** |" in r.stdout


def test_script_refuses_an_empty_ensemble(tmp_path):
    r = subprocess.run([sys.executable, "-m", "benchmarks.fmnist_plus.time_ratio", "--out", str(tmp_path),
                        "--members", "0"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode != 0 and "--members" in r.stderr

"""benchmarks/scale.py: the scale benchmark end to end at a tiny N, and its pieces."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import scale

ROOT = Path(__file__).resolve().parents[2]  # python -m benchmarks... runs from the repository root


def test_extra_configurations_parse_and_bad_ones_exit():
    assert scale.parse_extra("128000x100,5X2") == [(128000, 100), (5, 2)]
    assert scale.parse_extra("") == []
    for bad in ("128000", "x100", "12k x 3"):
        with pytest.raises(SystemExit, match="--extra"):
            scale.parse_extra(bad)


def test_reuse_keeps_rows_measured_with_the_same_settings(tmp_path):
    args = scale.parse_args(["--work", str(tmp_path), "--json", str(tmp_path / "s.json"), "--reuse"])
    settings = {k: getattr(args, k) for k in scale._SAME}
    (tmp_path / "s.json").write_text(json.dumps({"settings": settings, "results": [{"samples": 5, "augs": 2}]}))
    assert scale.reusable_rows(args) == {(5, 2): {"samples": 5, "augs": 2}}
    args.topk += 1  # other settings: nothing kept
    assert scale.reusable_rows(args) == {}
    args.topk -= 1
    args.reuse = False
    assert scale.reusable_rows(args) == {}


def test_data_are_deterministic_and_labelled_by_class(tmp_path):
    a = scale.make_data(tmp_path / "a.npz", 250, 100)
    b = scale.make_data(tmp_path / "b.npz", 250, 100)
    with np.load(a) as za, np.load(b) as zb:
        assert za["x"].shape == (250, 3, 8, 8) and za["x"].dtype == np.uint8
        assert np.array_equal(za["x"], zb["x"]) and np.array_equal(za["y"], np.arange(250) % 100)
    # the teacher is the nearest-template classifier of these images: it mostly names the label
    with np.load(a) as z:
        x, y = z["x"], z["y"]
    logits = scale.teacher(100, 3)(torch.from_numpy(x).float() / 255)
    assert (logits.argmax(1).numpy() == y).mean() > 0.9


def test_scale_benchmark_end_to_end_at_a_tiny_size(tmp_path):
    out, plot = tmp_path / "scale.json", tmp_path / "scale.png"
    cmd = [sys.executable, "-m", "benchmarks.scale", "--sizes", "300", "--augs", "2", "--classes", "100",
           "--shard-size", "20", "--teacher-batch", "32", "--slow-teacher", "--kill-fraction", "0.3",
           "--work", str(tmp_path / "work"), "--calls", "500", "--cold-calls", "50", "--items", "50",
           "--open-repeats", "1", "--verify-rounds", "1", "--rss-batch", "50", "--rss-samples", "3",
           "--teacher-batches", "2", "--json", str(out), "--plot", str(plot)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert plot.stat().st_size > 10_000  # a rendered figure
    (row,) = result["results"]
    assert (row["samples"], row["augs"], row["records"]) == (300, 2, 600)
    assert row["store"]["shards"] == 15
    rein = row["reinforce"]
    for key in ("records_per_s", "us_per_record", "overhead_us_per_record", "cpu_us_per_record_with_setup"):
        assert rein[key] > 0, key
    assert 0 < rein["teacher"]["us_per_record"] < rein["us_per_record"]
    resume = rein["resume"]  # killed part way, finished by the rerun, verified
    assert 0 < resume["killed"]["shards_on_disk"] < 15
    kept = resume["records_kept_from_killed_run"]  # whole shards (the last one may not be in the manifest yet)
    assert kept % 40 == 0 and 0 < kept <= 40 * resume["killed"]["shards_on_disk"]
    assert resume["records_recomputed_by_resume"] + resume["records_kept_from_killed_run"] == 600
    assert resume["verify_ok"] is True
    assert resume["restart_s"] > 0 and resume["discarded_work_s"] >= 0
    assert resume["lost_s"] == pytest.approx(resume["restart_s"] + resume["discarded_work_s"])
    assert row["open"]["open_s"] > 0 and row["open"]["import_s"] > 0
    if row["open"]["has_sample_keys"]:
        assert row["open"]["rows_ok"] is True and row["open"]["index_build_s"] >= 0
    assert row["verify"]["verify_mb_s"] > 0 and row["verify"]["sha256sum_mb_s"] > 0 and row["verify"]["ratio"] > 0
    assert row["read_warm"]["calls"] == 500 and row["read_warm"]["median_us"] > 0
    assert row["read_cold"]["calls"] == 50 and row["read_cold"]["dropped_with"]
    assert row["dataset_item"]["calls"] == 50 and row["dataset_item"]["median_us"] > 0
    rss = row["worker_rss"]
    assert rss["workers"] == 2 and len(rss["samples"]) >= 2
    for key in ("RssAnon", "RssFile", "RssShmem", "USS"):
        assert len(rss["growth"][key]) == 2
    assert all(s["RssAnon"] > 0 and s["RssFile"] > 0 for s in rss["start"])
    assert set(result["goals"]) == {"open_s_at_largest", "verify_vs_sha256sum_min", "read_warm_median_us_max",
                                    "worker_rss_anon_peak_growth_mib_max", "per_item_cost_largest_over_smallest_n"}
    assert set(result["goals"]["per_item_cost_largest_over_smallest_n"]) == set(scale.PER_ITEM)
    for measured in ("reinforce", "open", "verify", "read_warm", "read_cold", "dataset_item"):
        block = row[measured]
        assert any(k.startswith("loadavg") for k in block), measured  # every timing says how busy the machine was
    assert "|" in proc.stdout  # the Markdown table

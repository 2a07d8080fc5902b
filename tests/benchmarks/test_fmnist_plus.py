"""The Fashion-MNIST+ harness runs end to end (smoke profile) and caches its arms."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import drkit
from benchmarks._common import override
from benchmarks.fmnist_plus import fmnist_harness as harness

ROOT = Path(__file__).resolve().parents[2]  # python -m benchmarks... runs from the repository root


@pytest.mark.slow
def test_smoke_profile_end_to_end_and_cached(tmp_path):
    try:
        drkit.load_dataset("fashion-mnist:test")
    except drkit.DataError:
        pytest.skip("Fashion-MNIST files not installed")
    cmd = [sys.executable, "-m", "benchmarks.fmnist_plus.fmnist_harness", "--profile", "smoke", "--out", str(tmp_path / "fm"), "-q",
           "--device", "cpu", "--report", str(tmp_path / "report.md"), "--set", "temperature=0.5",
           "--set", "limited_temperature=1"]  # as the standard profile: sharper main store, limited store at 1
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "fm" / "results.json").read_text())
    assert len(res["teachers"]["members"]) == 3
    assert {(s["arch"], s["mode"]) for s in res["students"]} == {
        (a, m) for a in ("smallcnn-4", "vit-mini-1") for m in ("erm", "dr", "kd")}
    assert {(t["pretrain"], t["finetune"]) for t in res["transfer"]["rows"]} == {
        (p, f) for p in ("none", "erm", "dr") for f in ("erm", "dr")}
    for s in res["students"]:  # every student evaluated by drkit eval, its evaluation saved
        assert 0 <= s["mca"] <= 1 and 0 <= s["shift_acc"] <= 1
        assert json.loads(Path(s["eval"]).read_text())["robustness"]["mean_corruption_accuracy"] == s["mca"]
    erm, dr = res["limited"]  # the DR student of the limited arm reads a store of its own images
    assert erm["mode"] == "erm" and dr["mode"] == "dr" and dr["fraction"] == erm["fraction"] == 0.2
    dr_config = json.loads((Path(dr["run"]) / "config.json").read_text())
    erm_config = json.loads((Path(erm["run"]) / "config.json").read_text())
    assert dr_config["train_samples"] == erm_config["train_samples"] == 60
    assert drkit.Store.open(dr_config["store"]).num_augs == 2 and dr_config["store"].endswith("store-limited-s0-a2")
    assert drkit.Store.open(dr_config["store"]).summary()["teacher"]["temperature"] == 1.0
    assert drkit.Store.open(res["store"]["path"]).summary()["teacher"]["temperature"] == 0.5
    assert set(res["arm_seconds"]) == {p.stem for p in (tmp_path / "fm" / "arms").iterdir()}
    ens = res["teachers"]["ensemble"]  # the teacher's own robustness, what its students can inherit
    assert 0 <= ens["mca"] <= 1 and 0 <= ens["shift_acc"] <= 1
    report = (tmp_path / "report.md").read_text()
    assert "### Goals" in report and f"Ensemble under corruptions: {100 * ens['mca']:.2f} %" in report
    plots = res["compare"]["plots"]
    assert plots and all((tmp_path / "report" / Path(q).name).is_file() for q in plots)
    assert f"](report/{Path(plots[0]).name})" in report
    arms = sorted(p.name for p in (tmp_path / "fm" / "arms").iterdir())
    # calibration.py re-measures the saved students: on the report's test images it gives the run's ECE
    r = subprocess.run([sys.executable, "-m", "benchmarks.fmnist_plus.calibration", str(tmp_path / "fm")],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    cal = json.loads((tmp_path / "fm" / "calibration.json").read_text())
    assert len(cal["students"]) == len(res["students"]) and cal["test_images"]["report"] == 100
    by_key = {(s["arch"], s["mode"], s["seed"]): s for s in res["students"]}
    for row in cal["students"]:
        assert row["report"]["ece"] == pytest.approx(by_key[row["arch"], row["mode"], row["seed"]]["ece"], abs=1e-6)
        assert 0 < row["ece_floor_all"] < row["ece_floor_report"] < 1  # 100 of 10,000 test images
        assert 1 / 10 <= row["all"]["confidence"] <= 1  # mean top-1 probability of 10 classes
    assert set(cal["ratios"]) == {"report", "rest", "all"} and set(cal["teachers"]) >= {"clean", "view"}
    # rerun: every arm is cached, nothing is retrained; the report's hand-written discussion stays
    (tmp_path / "report.md").write_text(report + "\n## Discussion\n\nwritten by hand\n")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0
    rewritten = (tmp_path / "report.md").read_text()
    assert rewritten.startswith("# Fashion-MNIST+") and rewritten.endswith("\n## Discussion\n\nwritten by hand\n")
    assert sorted(p.name for p in (tmp_path / "fm" / "arms").iterdir()) == arms
    assert "arm " not in r.stderr  # the harness logs "arm NAME" only when it computes one
    # another limited-data temperature adds its own store and DR student, named by it; nothing else runs
    r = subprocess.run([*cmd, "--set", "limited_temperature=0.5"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    new = sorted(set(p.name for p in (tmp_path / "fm" / "arms").iterdir()) - set(arms))
    assert new == ["limited-s0-a2-t0.5-smallcnn-4-dr-s0.json", "store-limited-s0-a2-t0.5.json"]
    store = json.loads((tmp_path / "fm" / "arms" / new[1]).read_text())
    assert store["teacher"]["temperature"] == 0.5


def test_set_overrides_profile_fields_by_type():
    p = override(harness.PROFILES["quick"], ["teacher_epochs=30", "students=smallcnn-16,resnet18", "seeds=0,1",
                                             "teacher_policy=cropflip", "train_samples=10000", "test_samples=none",
                                             "limited_temperature=0.5"])
    assert (p.teacher_epochs, p.students, p.seeds) == (30, ("smallcnn-16", "resnet18"), (0, 1))
    assert (p.teacher_policy, p.train_samples, p.test_samples) == ("cropflip", 10000, None)
    assert p.limited_temperature == 0.5
    for bad in ("teacher_epoch=3", "teacher_epochs", "teacher_epochs=many"):
        with pytest.raises(SystemExit, match="--set"):
            override(harness.PROFILES["quick"], [bad])


def test_out_folder_refuses_arms_of_another_profile(tmp_path):
    quick = harness.PROFILES["quick"]
    harness.Harness(tmp_path, quick, "cpu", progress=False)
    harness.Harness(tmp_path, quick, "cpu", progress=False)  # same profile: fine
    harness.Harness(tmp_path, override(quick, ["seeds=0,1"]), "cpu", progress=False)  # another seed: fine
    harness.Harness(tmp_path, override(quick, ["limited_num_augs=40"]), "cpu", progress=False)  # a new limited store
    harness.Harness(tmp_path, override(quick, ["limited_temperature=0.5"]), "cpu", progress=False)  # named too
    with pytest.raises(SystemExit, match="student_epochs"):
        harness.Harness(tmp_path, override(quick, ["student_epochs=3"]), "cpu", progress=False)
    with pytest.raises(SystemExit, match="temperature"):  # sharper stored labels: other DR arms
        harness.Harness(tmp_path, override(quick, ["temperature=0.5"]), "cpu", progress=False)
    # A profile.json written before a field existed holds that field's default.
    saved = json.loads((tmp_path / "profile.json").read_text())
    del saved["temperature"]
    (tmp_path / "profile.json").write_text(json.dumps(saved))
    harness.Harness(tmp_path, quick, "cpu", progress=False)
    with pytest.raises(SystemExit, match="temperature"):
        harness.Harness(tmp_path, override(quick, ["temperature=0.5"]), "cpu", progress=False)
    (tmp_path / "profile.json").unlink()  # arms whose profile is unknown are refused too
    (tmp_path / "arms" / "teacher-fmnist-0.json").write_text("{}")
    with pytest.raises(SystemExit, match="no profile.json"):
        harness.Harness(tmp_path, quick, "cpu", progress=False)

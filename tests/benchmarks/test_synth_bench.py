"""The synth benchmark scripts run end to end at toy sizes (the reported profiles are far bigger)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import drkit
from benchmarks._common import override
from benchmarks.synth import synth_harness, teacher_agreement

ROOT = Path(__file__).resolve().parents[2]  # python -m benchmarks... runs from the repository root


@pytest.fixture(autouse=True)
def _fashion_mnist():
    try:
        drkit.load_dataset("fashion-mnist:test")
    except drkit.DataError:
        pytest.skip("Fashion-MNIST files not installed")


def test_cas_script_measures_generated_against_real(tmp_path):
    out = tmp_path / "cas"
    cmd = [sys.executable, "-m", "benchmarks.synth.cas", "--train-images", "200", "--steps", "4", "--width", "8",
           "--sample-steps", "2", "--cas-images", "50", "--epochs", "1", "--test-images", "300", "--out", str(out), "--device", "cpu", "-q"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / "cas.json").read_text())
    assert res["images"] == 50 and res["train_images"] == 200 and res["test_images"] == 300 and res["generator"]["config"]["train_steps"] == 4
    assert res["cas"]["train_items"] == 50 and res["real"]["train_items"] == 200
    assert 0 <= res["cas"]["top1"] <= 1 and (out / "samples.png").is_file()
    assert f"CAS {100 * res['cas']['top1']:.2f} %" in r.stdout


def _data(*assignments: str):
    return synth_harness.load_data(override(synth_harness.PROFILES["quick"], assignments))


def test_an_outside_generator_never_sees_the_pool():
    train, val, test, gen = _data("generator_images=10000")  # synth_pretrained*.md's generator
    assert (len(train), len(val), len(gen)) == (1000, 500, 10000)
    pixels = lambda d: {x.tobytes() for x in d.images}  # noqa: E731
    assert not pixels(gen) & (pixels(train) | pixels(val)), "the outside generator fit pool images"
    assert sorted(set(gen.labels.tolist())) == list(range(10)) and len(test) == 10000


def test_quick_profile_generator_fits_the_train_split():
    train, val, _, gen = _data()
    assert gen is train and len(train) == 1000 and len(val) == 500


def test_smoke_profile_runs_every_arm_and_reports_it(tmp_path):
    out, report = tmp_path / "synth", tmp_path / "docs" / "synth.md"
    cmd = [sys.executable, "-m", "benchmarks.synth.synth_harness", "--profile", "smoke", "--out", str(out), "--report", str(report),
           "--device", "cpu", "-q"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    arms = {(row["arm"], row["seed"]) for row in res["final"]}
    expected = ["none", "none-equal-steps", "random", "bandit", "ppo", "ppo+prompt-mix",
                "random+teacher", "bandit+teacher", "ppo+teacher"]  # the smoke profile labels every agent's set
    assert arms == {(a, s) for a in expected for s in (0, 1)}
    for agent in ("random", "bandit", "ppo"):  # each teacher arm reinforced its own agent's support set
        for seed in (0, 1):
            manifest = json.loads((out / "stores" / f"{agent}-s{seed}" / "manifest.json").read_text())
            assert manifest["settings"]["dataset"]["name"] == f"imagefolder:{out / 'support' / f'{agent}-s{seed}'}"
    # teacher_agreement.py reads those stores: one line per agent, every stored view counted
    r = subprocess.run([sys.executable, "-m", "benchmarks.synth.teacher_agreement", str(out)], capture_output=True,
                       text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [line.split() for line in r.stdout.splitlines()]
    assert [w[1] for w in lines] == ["bandit", "ppo", "random"]
    assert all(int(w[2]) == 2 * 20 * 2 for w in lines)  # 2 seeds x 20 images x 2 views
    text = report.read_text()
    assert "random agent's support set, teacher soft labels" in text and "## Goals" in text
    assert "the random agent's, the bandit's and PPO's support sets reinforced" in text
    assert (report.parent / "synth_samples.png").is_file()


def test_set_needs_an_out_of_its_own(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["synth_harness", "--profile", "smoke", "--set", "reward_signal=probe"])
    with pytest.raises(SystemExit):
        synth_harness.main()
    assert "--set needs an --out" in capsys.readouterr().err


def test_teacher_agreement_counts_views_whose_top_class_is_the_prompt_class():
    class Store:  # two images, two stored views each, three classes
        probs = [np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1]]), np.array([[0.1, 0.1, 0.8], [0.3, 0.3, 0.4]])]

        def records(self, i):
            return {"probs": self.probs[i]}

    hits, mass = teacher_agreement.agreement(Store(), np.array([0, 2]))
    assert hits.tolist() == [True, False, True, True]
    assert mass == pytest.approx([0.6, 0.2, 0.8, 0.4])

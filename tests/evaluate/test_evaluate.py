"""``evaluate_run`` / ``drkit eval``: every number present and consistent with the metric
functions, robustness independent of batching, mCE by hand, teacher agreement from a store, and
clear errors for a run/data mismatch (channels, classes, image size)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _eval_runs import make_run

from drkit.cli.main import main
from drkit.data import ArrayDataset, load_dataset
from drkit.errors import ConfigError, DataError
from drkit.evaluate.corruptions import CORRUPTIONS
from drkit.evaluate.evaluation import evaluate_run
from drkit.evaluate.robustness import mce
from drkit.inference import predict_probs
from drkit.metrics import evaluation_metrics
from drkit.training.runs import load_run_model


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs") / "erm", load_dataset("digits"), steps=60)


@pytest.fixture(scope="module")
def test_set() -> ArrayDataset:
    return load_dataset("digits:test")  # type: ignore[return-value]


def test_evaluate_run_reports_every_number(run, test_set):
    r = evaluate_run(run, test_set, robustness_samples=40)
    json.dumps(r, allow_nan=False)  # strict JSON
    model, _ = load_run_model(run)
    probs = predict_probs(model, test_set)
    assert r["metrics"] == pytest.approx(evaluation_metrics(probs, test_set.labels))
    assert r["metrics"]["top1"] > 0.5  # the tiny run did learn something
    assert list(r["per_class_accuracy"]) == [str(i) for i in range(10)]
    assert sum(r["reliability"]["count"]) == len(test_set) == r["num_samples"]
    rob = r["robustness"]
    assert list(rob["corruptions"]) == list(CORRUPTIONS) and rob["samples"] == 40
    assert [len(rob["shifts"][n]) for n in ("rotation", "translation")] == [12, 13]
    assert rob["mean_corruption_accuracy"] == pytest.approx(
        np.mean([x["top1"] for rows in rob["corruptions"].values() for x in rows]))
    assert rob["shifts"]["rotation"][2]["param"] == "45°"
    assert r["run"]["config"]["arch"] == "smallcnn-4" and r["label"].startswith("smallcnn-4 erm")
    assert "teacher" not in r and "ood" not in r and "certify" not in r


def test_robustness_does_not_depend_on_the_batch_size(run, test_set):
    kw = {"robustness_samples": 30, "shifts": ["rotation"], "corruptions": ["gaussian_noise", "elastic_transform"]}
    a = evaluate_run(run, test_set, batch_size=7, **kw)["robustness"]
    b = evaluate_run(run, test_set, batch_size=512, **kw)["robustness"]

    def numbers(rob: dict) -> list[float]:
        return [x[k] for group in ("corruptions", "shifts") for rows in rob[group].values() for x in rows
                for k in ("top1", "nll", "ece")]

    assert numbers(a) == pytest.approx(numbers(b), abs=1e-9)


def test_default_data_is_the_runs_eval_data(run):
    r = evaluate_run(run, corruptions=False, shifts=False)
    assert r["data"] == "digits:test" and "robustness" not in r


def _gray(n: int, size: int, classes: int) -> ArrayDataset:
    images = np.zeros((n, 1, size, size), dtype=np.uint8)
    return ArrayDataset(images, np.arange(n) % classes, classes=[f"c{i}" for i in range(classes)], name="fake")


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        (ArrayDataset(np.zeros((10, 3, 8, 8), dtype=np.uint8), np.arange(10), name="rgb"), "1-channel images"),
        (_gray(10, 28, 10), "8×8 images"),
        (_gray(6, 8, 3), "predicts 10 classes"),
    ],
    ids=["channels", "image-size", "classes"],
)
def test_run_data_mismatch_is_a_clear_error(run, dataset, message):
    with pytest.raises(DataError, match=message) as e:
        evaluate_run(run, dataset)
    assert "digits" in str(e.value)  # says what the run was trained on


def test_not_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not a finished drkit run"):
        evaluate_run(tmp_path, "digits:test")


def test_mce_by_hand():
    def rob(errors: dict[str, list[float]], seed: int = 0) -> dict:
        return {"seed": seed, "samples": 10, "backend": "torch",
                "corruptions": {k: [{"top1": 1 - e} for e in v] for k, v in errors.items()}}

    model = rob({"a": [0.2, 0.4], "b": [0.1, 0.1], "c": [0.3, 0.3]})
    ref = rob({"a": [0.4, 0.4], "b": [0.2, 0.0], "c": [0.0, 0.0]})
    out = mce(model, ref, clean_error=0.1, reference_clean_error=0.05)
    assert out["ce"] == pytest.approx({"a": 0.75, "b": 1.0, "c": None})  # c: the reference never errs
    assert out["mce"] == pytest.approx(0.875)
    # relative: a (0.1 + 0.3) / (0.35 + 0.35); b (0 + 0) / (0.15 - 0.05)
    assert out["relative_ce"]["a"] == pytest.approx(0.4 / 0.7) and out["relative_ce"]["b"] == pytest.approx(0.0)
    assert out["relative_mce"] == pytest.approx((0.4 / 0.7) / 2)
    with pytest.raises(ConfigError, match="seed differs"):
        mce(model, rob({"a": [0.1, 0.1]}, seed=1))


def test_reference_run_gives_mce(run, test_set, tmp_path):
    kw = {"robustness_samples": 30, "shifts": False}
    itself = evaluate_run(run, test_set, reference=run, **kw)["robustness"]
    assert itself["mce"] == pytest.approx(1.0)
    other = make_run(tmp_path / "other", load_dataset("digits"), steps=20, seed=1)
    rob = evaluate_run(other, test_set, reference=run, **kw)["robustness"]
    assert rob["mce"] is not None and rob["mce"] != pytest.approx(1.0) and "relative_mce" in rob
    bare = evaluate_run(run, test_set, corruptions=False, shifts=False)
    with pytest.raises(ConfigError, match="no corruption results"):
        evaluate_run(other, test_set, reference=bare, **kw)


def test_teacher_agreement_from_a_store(run, test_set, digits60, digits_teacher, make_store, tmp_path):
    make_store(digits60, [f"run:{run}"], out=tmp_path / "by-spec", policy="cropflip")
    r = evaluate_run(run, test_set, store=tmp_path / "by-spec", corruptions=False, shifts=False,
                     trust_store_teachers=True)
    t = r["teacher"]  # the student is its own teacher here
    assert t["agreement"] == 1.0 and t["total_variation"] == pytest.approx(0.0, abs=1e-6)
    assert t["top1"] == pytest.approx(r["metrics"]["top1"]) and t["members"] == [f"run:{run}"]

    make_store(digits60, digits_teacher, out=tmp_path / "by-module", policy="cropflip")
    with pytest.raises(ConfigError, match="teacher modules given from Python"):
        evaluate_run(run, test_set, store=tmp_path / "by-module", corruptions=False, shifts=False)
    t = evaluate_run(run, test_set, teacher=[digits_teacher], corruptions=False, shifts=False)["teacher"]
    assert 0.0 <= t["agreement"] <= 1.0 and t["members"] == ["SmallCNN"]


def test_cli_eval_json_and_errors(run, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["eval", str(run), "--data", "digits:test", "--json", "--robustness-samples", "20", "--no-shifts",
                 "--out", str(out), "-q"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text()) and printed["robustness"]["samples"] == 20
    assert main(["eval", str(run), "--no-corruptions", "--no-shifts", "-q"]) == 0
    text = capsys.readouterr().out
    assert "top-1" in text and "ECE" in text and "worst" in text

    npz = tmp_path / "rgb.npz"
    np.savez(npz, x=np.zeros((4, 8, 8, 3), dtype=np.uint8), y=np.arange(4))
    assert main(["eval", str(run), "--data", f"npz:{npz}", "-q"]) == 1
    assert "1-channel images" in capsys.readouterr().err


def test_temperature_scaling_is_fitted_on_the_held_out_split_only(run, test_set):
    from drkit.evaluate.calibration import scale_probs
    from drkit.metrics import ece

    held = test_set.subset(np.arange(0, len(test_set), 2), name="digits:test-even")
    rest = test_set.subset(np.arange(1, len(test_set), 2), name="digits:test-odd")
    r = evaluate_run(run, rest, corruptions=False, shifts=False, calibration_data=held)
    c = r["calibration"]
    assert c["data"] == "digits:test-even" and c["num_samples"] == len(held)
    model, _ = load_run_model(run)
    probs = predict_probs(model, rest)
    assert c["ece_before"] == pytest.approx(r["metrics"]["ece"])
    assert c["ece_after"] == pytest.approx(ece(scale_probs(probs, c["temperature"]), rest.labels))
    assert c["nll_after"] <= c["nll_before"] + 0.05  # fitted on another half of the same distribution
    assert c["temperature"] != pytest.approx(1.0, abs=1e-3)
    with pytest.raises(ConfigError, match="is the evaluation data"):
        evaluate_run(run, rest, corruptions=False, shifts=False, calibration_data=rest)

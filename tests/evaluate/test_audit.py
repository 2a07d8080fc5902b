"""``drkit audit``: the teacher's view of each sample (stored soft labels, λ-weighted under mixing,
or the teacher rerun), agreement and calibration against the labels, the most confident
disagreements as an image gallery, and a clear error for the wrong dataset."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from _eval_runs import make_run

from drkit.augment.ops import LAMBDA_SCALE
from drkit.cli.main import main
from drkit.errors import StoreMismatchError, TeacherError
from drkit.evaluate.audit import audit_store, stored_teacher_probs, write_audit_report
from drkit.inference import predict_probs
from drkit.metrics import accuracy, evaluation_metrics
from drkit.reinforcement.store import Store
from drkit.reinforcement.targets import densify
from drkit.training.runs import load_run_model


def _manual(store: Store, i: int, weighted: bool) -> np.ndarray:
    recs = store.records(i)
    dense = densify(np.asarray(recs["probs"], np.float32), np.asarray(recs["classes"], np.int64),
                    store.num_classes).double().numpy()
    w = np.asarray(recs["mix_lam"], np.float64) / LAMBDA_SCALE if weighted else np.ones(len(recs))
    return (w[:, None] * dense).sum(0) / w.sum()


def test_stored_teacher_probs_by_hand(digits60, digits_teacher, make_store, tmp_path):
    plain = make_store(digits60, digits_teacher, out=tmp_path / "plain", policy="cropflip")
    probs = stored_teacher_probs(plain)
    assert probs.shape == (60, 10) and np.allclose(probs.sum(1), 1.0)
    for i in (0, 17, 59):
        assert np.allclose(probs[i], _manual(plain, i, weighted=False))
    mixed = make_store(digits60, digits_teacher, out=tmp_path / "mixed")  # randaugment+mixing
    assert np.allclose(stored_teacher_probs(mixed)[5], _manual(mixed, 5, weighted=True))


def test_audit_numbers_and_disagreements(digits60, digits_teacher, make_store, tmp_path):
    store = make_store(digits60, digits_teacher, policy="cropflip")
    r = audit_store(store, digits60, top=5)
    json.dumps(r, allow_nan=False)
    probs = stored_teacher_probs(store)
    assert r["agreement"] == pytest.approx(accuracy(probs, digits60.labels))
    assert r["metrics"] == pytest.approx(evaluation_metrics(probs, digits60.labels))
    assert r["overconfidence"] == pytest.approx(probs.max(1).mean() - r["agreement"])
    d = r["disagreements"]
    assert 0 < len(d) <= 5  # an untrained teacher disagrees often
    assert all(x["label"] != x["teacher"] for x in d)
    assert [x["confidence"] for x in d] == sorted((x["confidence"] for x in d), reverse=True)
    wrong = probs.argmax(1) != digits60.labels
    assert d[0]["confidence"] == pytest.approx(probs.max(1)[wrong].max())
    assert sum(c["count"] for c in r["confusions"]) <= wrong.sum() and list(r["per_class_agreement"])[0] == "0"


def test_audit_by_rerunning_the_teacher(digits60, make_store, tmp_path):
    run = make_run(tmp_path / "teacher", digits60, steps=30)
    store = make_store(digits60, [f"run:{run}"], policy="cropflip")
    with pytest.raises(TeacherError, match="--trust-store-teachers"):
        audit_store(store.root, digits60, source="teacher")  # a store's teachers are not loaded unasked
    r = audit_store(store.root, digits60, source="teacher", trust_store_teachers=True)
    assert audit_store(store.root, digits60, source="teacher", teacher=[f"run:{run}"])["metrics"] == r["metrics"]
    model, _ = load_run_model(run)
    assert r["metrics"] == pytest.approx(evaluation_metrics(predict_probs(model, digits60), digits60.labels))
    assert r["source"] == "teacher" and r["teacher"] == [f"run:{run}"]


def test_audit_against_another_dataset_fails(digits60, _digits_train, digits_teacher, make_store):
    store = make_store(digits60, digits_teacher, policy="cropflip")
    with pytest.raises(StoreMismatchError, match="samples"):
        audit_store(store, _digits_train.subset(np.arange(61)))


def test_report_gallery_and_cli(digits60, digits_teacher, make_store, tmp_path, capsys):
    store = make_store(digits60, digits_teacher, policy="cropflip")
    r = audit_store(store, digits60, top=6)
    paths = write_audit_report(r, digits60, tmp_path / "audit")
    page = paths["html"].read_text()
    assert page.count("<figure>") == len(r["disagreements"]) and 'class="gallery"' in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # self-contained
    md = paths["markdown"].read_text()
    for link in re.findall(r"\]\(((?:gallery|plots)/[\w-]+\.png)\)", md):
        assert (tmp_path / "audit" / link).stat().st_size > 100
    assert json.loads(paths["json"].read_text())["agreement"] == r["agreement"]

    npz = tmp_path / "d60.npz"
    np.savez(npz, x=digits60.images[:, 0], y=digits60.labels)
    npz_store = make_store(f"npz:{npz}", digits_teacher, out=tmp_path / "npz-store", policy="cropflip")
    assert main(["audit", str(npz_store.root), "--data", f"npz:{npz}", "--top", "4"]) == 0
    out = capsys.readouterr().out
    assert "agreement" in out and "over-confidence" in out and "npz-store-audit" in out
    assert (tmp_path / "npz-store-audit" / "audit.html").is_file()
    assert main(["audit", str(npz_store.root), "--data", "digits"]) == 1
    assert "samples" in capsys.readouterr().err

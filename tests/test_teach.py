"""``drkit teach``: a held-out split never trained on, a fitted temperature, an ensemble that
``--teacher ensemble:DIR`` loads, a report per member and for the ensemble, resume per member."""

import json

import numpy as np
import pytest
import torch

import drkit
from drkit.cli.main import main
from drkit.errors import ConfigError, TeacherError
from drkit.evaluate.calibration import ensemble_probs as _ensemble_probs
from drkit.evaluate.calibration import fit_temperature
from drkit.reinforcement.teachers import EnsembleFile, expand_teachers, prepare_teacher
from drkit.teach import TeachConfig, teach, teacher_summary
from drkit.training.loop import TrainConfig


def _digits600():
    return drkit.load_dataset("digits").subset(np.arange(600), name="digits600")


def _nll(logits, labels, t):
    p = _ensemble_probs(logits, t)[np.arange(len(labels)), labels]
    return -np.log(p).mean()


def test_fit_temperature_minimises_the_held_out_nll():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 400)
    # over-confident members: right 70 % of the time, with huge logits
    logits = []
    for _ in range(2):
        z = rng.normal(size=(400, 5))
        hit = rng.random(400) < 0.7
        z[np.arange(400), np.where(hit, labels, (labels + 1) % 5)] += 4.0
        logits.append(z * 5)
    t = fit_temperature(logits, labels)
    assert t > 1.5  # over-confident logits are softened
    for other in (t / 1.3, t * 1.3):
        assert _nll(logits, labels, t) < _nll(logits, labels, other)


@pytest.fixture(scope="module")
def taught(tmp_path_factory):
    out = tmp_path_factory.mktemp("teach") / "teachers"
    lines: list[str] = []
    r = teach(_digits600(), ["smallcnn-4", "mlp-16"], out, TeachConfig(policy="cropflip", robust_samples=50),
              TrainConfig(epochs=2, lr=3e-3, label_smoothing=0.1, device="cpu"), eval_data="digits:test",
              progress=False, report=lines.append)
    return r, out, lines


def test_teach_writes_a_loadable_calibrated_ensemble(taught):
    r, out, lines = taught
    ens = EnsembleFile.read(out)
    assert ens.members == ["members/0-smallcnn-4", "members/1-mlp-16"] and ens.temperature == r.temperature
    holdout = np.array(json.loads((out / "holdout.json").read_text())["indices"])
    labels = _digits600().labels
    assert len(holdout) == ens.holdout["size"] and set(np.unique(labels[holdout])) == set(range(10))  # stratified
    for k, arch in enumerate(("smallcnn-4", "mlp-16")):
        cfg = json.loads((out / "members" / f"{k}-{arch}" / "config.json").read_text())
        assert cfg["train_samples"] == len(labels) - len(holdout) and cfg["train"]["seed"] == k  # seeds differ
        assert cfg["train"]["label_smoothing"] == 0.1 and cfg["policy"] == "cropflip"
    for row in [*r.members, r.ensemble]:  # every number of the report is there
        for split in ("holdout", "eval"):
            assert set(row[split]) == {"top1", "nll", "ece"}
        assert 0 <= row["corruption_accuracy"] <= 1 and row["train_seconds"] > 0
    assert r.eval_data == "digits:test"
    report = json.loads((out / "teach.json").read_text())
    assert report["temperature"] == r.temperature and len(report["members"]) == 2
    assert any("member 2/2 mlp-16" in line for line in lines) and any("min left" in line for line in lines)
    # the fitted temperature beats T = 1 on the held-out split (it is its NLL minimum)
    assert r.ensemble["holdout"]["nll"] <= r.ensemble["holdout_t1"]["nll"] + 1e-9


def test_ensemble_spec_uses_the_fitted_temperature_unless_given(taught):
    r, out, _ = taught
    specs, t = expand_teachers([f"ensemble:{out}"], None)
    assert specs == [f"run:{out / 'members/0-smallcnn-4'}", f"run:{out / 'members/1-mlp-16'}"] and t == r.temperature
    assert expand_teachers([f"ensemble:{out}"], 2.0)[1] == 2.0
    digits = _digits600()
    ensemble, desc = prepare_teacher(f"ensemble:{out}", digits)
    assert desc["temperature"] == r.temperature and len(ensemble.members) == 2
    x = torch.rand(3, 1, 8, 8)
    single, _ = drkit.load_teacher(f"ensemble:{out}", num_classes=10, in_chans=1)
    torch.testing.assert_close(single(x), ensemble(x))


def test_reinforce_records_the_fitted_temperature_and_prints_the_teacher_check(taught, tmp_path, capsys):
    r, out, _ = taught
    assert main(["reinforce", "digits", "--teacher", f"ensemble:{out}", "--num-augs", "1", "--out",
                 str(tmp_path / "s")]) == 0
    err = capsys.readouterr().err
    assert f"ensemble:{out}: 2 members, T={r.temperature:.3f}; held-out top-1" in err
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["settings"]["teacher"]["temperature"] == pytest.approx(r.temperature)
    lines = teacher_summary([f"run:{out / 'members/0-smallcnn-4'}", "timm:resnet18@x.safetensors"])
    assert "digits:test: top-1" in lines[0] and lines[1].endswith("not evaluated")


def test_teach_resumes_without_retraining(taught):
    r, out, _ = taught
    seconds = json.loads((out / "members/0-smallcnn-4/metrics.json").read_text())["train_seconds"]
    again = teach(_digits600(), ["smallcnn-4", "mlp-16"], out, TeachConfig(policy="cropflip", robust_samples=50),
                  TrainConfig(epochs=2, lr=3e-3, label_smoothing=0.1, device="cpu"), eval_data="digits:test",
                  progress=False)
    assert again.temperature == r.temperature and again.members[0]["train_seconds"] == seconds
    with pytest.raises(ConfigError, match="another held-out split"):
        teach(_digits600(), ["smallcnn-4"], out, TeachConfig(policy="cropflip", holdout=0.2),
              TrainConfig(epochs=2, device="cpu"), progress=False)


def test_teach_checks_every_architecture_before_training(tmp_path):
    with pytest.raises(ConfigError, match=r"convnext_atto cannot take 1×8×8 images.*--image-size"):
        teach("digits", ["smallcnn-4", "convnext_atto"], tmp_path / "t", progress=False)
    assert not (tmp_path / "t").exists()  # nothing trained, nothing written
    with pytest.raises(ConfigError, match="at least one --arch"):
        teach("digits", [], tmp_path / "u")


def test_bad_ensemble_descriptions_are_teacher_errors(tmp_path):
    with pytest.raises(TeacherError, match="not a teacher ensemble"):
        EnsembleFile.read(tmp_path)
    (tmp_path / "ensemble.json").write_text(json.dumps({"format": "drkit-teacher-ensemble", "version": 1,
                                                        "members": ["../../etc"], "temperature": 1.0}))
    with pytest.raises(TeacherError, match="inside the ensemble's folder"):
        EnsembleFile.read(tmp_path)
    (tmp_path / "ensemble.json").write_text("{not json")
    with pytest.raises(TeacherError, match="not a valid drkit ensemble"):
        EnsembleFile.read(tmp_path)


def test_teach_cli_prints_the_table(tmp_path, capsys):
    assert main(["teach", "digits", "--arch", "smallcnn-4", "--arch", "smallcnn-4", "--epochs", "1",
                 "--policy", "cropflip", "--robust-samples", "20", "--device", "cpu", "--out",
                 str(tmp_path / "t"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "held-out" in out and "corrupt." in out and "ensemble" in out
    assert f"--teacher ensemble:{tmp_path / 't'}" in out

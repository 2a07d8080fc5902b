"""The ``drkit`` command line: reinforce, info, verify, demo, and its error messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import drkit
from drkit.cli import main

TESTS = Path(__file__).parent


@pytest.fixture()
def npz_data(tmp_path: Path) -> str:
    ds = drkit.load_dataset("digits").subset(np.arange(40))
    path = tmp_path / "digits40.npz"
    np.savez(path, x=ds.images[:, 0], y=ds.labels)
    return f"npz:{path}"


@pytest.fixture(autouse=True)
def _teachers_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TESTS))


def _reinforce(data: str, out: Path, *extra: str) -> int:
    return main(["reinforce", data, "--teacher", "python:_cli_teachers:tiny", "--num-augs", "2",
                 "--topk", "3", "--num-workers", "0", "--out", str(out), "-q", *extra])


def test_reinforce_info_verify(npz_data, tmp_path, capsys):
    out = tmp_path / "store"
    assert _reinforce(npz_data, out, "--teacher", "python:_cli_teachers:tiny") == 0
    text = capsys.readouterr().out
    assert "bytes per stored augmentation" in text and "of the source dataset" in text

    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["num_samples"] == 40 and info["num_augs"] == 2 and info["topk"] == 3
    assert len(info["teacher"]["members"]) == 2  # two --teacher flags form an ensemble
    assert main(["info", str(out)]) == 0
    assert "randaugment" in capsys.readouterr().out

    assert main(["verify", str(out), "--data", npz_data]) == 0
    assert "dataset fingerprint verified" in capsys.readouterr().out
    # rerunning a complete store computes nothing
    assert _reinforce(npz_data, out, "--teacher", "python:_cli_teachers:tiny") == 0
    assert "already complete" in capsys.readouterr().out


def test_verify_against_another_dataset_fails(npz_data, tmp_path, capsys):
    out = tmp_path / "store"
    assert _reinforce(npz_data, out) == 0
    capsys.readouterr()
    assert main(["verify", str(out), "--data", "digits"]) == 2
    err = capsys.readouterr().err
    assert "error" in err and "samples" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--topk", "0"], "topk must be a positive integer"),
        (["--num-augs", "-1"], "num_augs must be a positive integer"),
        (["--policy", "autoaugment"], "unknown policy"),
    ],
)
def test_bad_settings_exit_2_and_write_nothing(npz_data, tmp_path, capsys, extra, message):
    out = tmp_path / "store"
    assert _reinforce(npz_data, out, *extra) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_wrong_teacher_width_is_a_clear_error(npz_data, tmp_path, capsys):
    out = tmp_path / "store"
    code = main(["reinforce", npz_data, "--teacher", "python:_cli_teachers:wrong_width", "--out", str(out), "-q",
                 "--num-workers", "0"])
    assert code == 2
    assert "11 outputs per image but the dataset has 10 classes" in capsys.readouterr().err.replace("(11,)", "11")
    assert not out.exists()


def test_unknown_dataset_and_teacher(tmp_path, capsys):
    assert main(["reinforce", "cifar10", "--teacher", "python:_cli_teachers:tiny", "--out", str(tmp_path / "a")]) == 2
    assert "unknown dataset" in capsys.readouterr().err
    assert main(["reinforce", "digits", "--teacher", "hub:resnet", "--out", str(tmp_path / "b")]) == 2
    assert "unknown teacher" in capsys.readouterr().err


def test_info_on_a_directory_that_is_not_a_store(tmp_path, capsys):
    assert main(["info", str(tmp_path)]) == 2
    assert "not a drkit store" in capsys.readouterr().err


def test_demo_runs_end_to_end_and_resumes(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--teacher-epochs", "1", "--num-augs", "2", "--student-epochs", "1", "-q"]) == 0
    text = capsys.readouterr().out
    assert "ensemble" in text and "reinforced store" in text
    store = drkit.Store.open(out / "digits+", dataset=drkit.load_dataset("digits"))
    assert store.num_augs == 2 and len(store.settings["teacher"]["members"]) == 3
    # cached: the second run loads the teachers instead of training them and reuses the store
    assert main(["demo", "--out", str(out), "--teacher-epochs", "1", "--num-augs", "2", "--student-epochs", "1", "-q"]) == 0
    assert "reinforced store" in capsys.readouterr().out

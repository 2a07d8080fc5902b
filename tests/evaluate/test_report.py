"""``drkit compare``: the HTML page is self-contained, the Markdown links plots that exist, the JSON
holds the numbers, mCE is relative to the chosen reference, and the page renders (headless
Chromium screenshot, skipped where Chromium is absent)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from _eval_runs import make_run

from drkit.cli.main import main
from drkit.data import load_dataset
from drkit.errors import ConfigError
from drkit.evaluate.evaluation import evaluate_run
from drkit.evaluate.report import compare, write_report

EVAL = {"robustness_samples": 24, "corruptions": ["gaussian_noise", "contrast"], "shifts": ["rotation"]}


@pytest.fixture(scope="module")
def evals(tmp_path_factory) -> list[dict]:
    root = tmp_path_factory.mktemp("runs")
    digits = load_dataset("digits")
    runs = [make_run(root / "erm", digits, steps=40, mode="erm"),
            make_run(root / "dr", digits, steps=60, mode="dr", seed=1),
            make_run(root / "dr-wide", digits, steps=60, mode="dr", seed=2, width=6)]
    test = load_dataset("digits:test")
    return [evaluate_run(r, test, **EVAL) for r in runs]


def test_report_files_and_content(evals, tmp_path):
    paths = write_report(evals, tmp_path / "rep", reference=1)
    page = paths["html"].read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("data:image/png;base64,") >= 5
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched: self-contained
    for title in ("Summary", "By architecture and mode", "Calibration", "Corruptions", "Shifts", "Per-class accuracy"):
        assert f"<h2>{title}</h2>" in page
    md = paths["markdown"].read_text()
    links = re.findall(r"\]\((plots/[\w-]+\.png)\)", md)
    assert len(links) >= 5 and all((tmp_path / "rep" / link).stat().st_size > 1000 for link in links)
    assert "| run | top-1 |" in md and "gaussian_noise" in md

    data = json.loads(paths["json"].read_text())
    assert data["reference"] == evals[1]["label"] and len(data["results"]) == 3
    rows = {r["label"]: r for r in data["rows"]}
    assert rows[evals[1]["label"]]["mce"] == pytest.approx(1.0)  # the reference against itself
    assert rows[evals[0]["label"]]["top1"] == pytest.approx(evals[0]["metrics"]["top1"])
    assert {r["arch"] for r in data["rows"]} == {"smallcnn-4", "smallcnn-6"}
    assert evals[0]["robustness"].get("mce") is None  # the inputs are left untouched


def test_compare_reads_saved_evaluations_and_picks_the_reference(evals, tmp_path):
    saved = tmp_path / "erm.json"
    saved.write_text(json.dumps(evals[0]))
    res = compare([saved, evals[1]], tmp_path / "rep", reference=evals[1]["run"]["path"])
    assert [r["label"] for r in res["rows"]] == [evals[0]["label"], evals[1]["label"]]
    assert res["rows"][1]["mce"] == pytest.approx(1.0)
    # the same run twice gets distinct labels
    twice = compare([evals[0], evals[0]], tmp_path / "rep2")
    assert twice["rows"][1]["label"].endswith("#2")


def test_compare_refuses_mixed_data_and_unknown_reference(evals, tmp_path):
    other = json.loads(json.dumps(evals[0]))
    other["data"] = "digits"
    with pytest.raises(ConfigError, match="different data"):
        write_report([evals[0], other], tmp_path / "rep")
    with pytest.raises(ConfigError, match="not one of the compared runs"):
        write_report(evals, tmp_path / "rep", reference="no-such-run")
    with pytest.raises(ConfigError, match="at least one"):
        write_report([], tmp_path / "rep")


def test_cli_compare(evals, tmp_path, capsys):
    # a saved evaluation next to a run evaluated on the spot (without robustness: its cells stay empty)
    saved = tmp_path / "erm.json"
    saved.write_text(json.dumps(evals[0]))
    assert main(["compare", str(saved), evals[1]["run"]["path"], "--out", str(tmp_path / "rep"),
                 "--no-corruptions", "--no-shifts", "-q"]) == 0
    out = capsys.readouterr().out
    assert "report.html" in out and "mCE" in out
    rows = json.loads((tmp_path / "rep" / "report.json").read_text())["rows"]
    assert rows[0]["mca"] is not None and rows[1]["mca"] is None
    assert main(["compare", str(saved), "--out", str(tmp_path / "rep"), "--reference", "nope", "-q"]) == 1
    assert "not one of the compared runs" in capsys.readouterr().err


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed (apt-get install chromium)")
def test_html_renders_in_headless_chromium(evals, tmp_path):
    from PIL import Image

    page = write_report(evals[:2], tmp_path / "rep")["html"]
    shot = tmp_path / "shot.png"
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--window-size=1200,1600", f"--screenshot={shot}", page.resolve().as_uri()]
    subprocess.run(cmd, check=True, timeout=120, capture_output=True)
    img = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert img.shape == (1600, 1200)
    # not blank: text, tables and plots put dark pixels on the white page
    assert img.std() > 20 and (img < 128).mean() > 0.01

import json

import _synth_fixtures  # noqa: F401  (skips without drkit[synth])
import pytest

from drkit.cli import build_parser
from drkit.errors import ConfigError


def _main(argv):
    """``drkit`` without main's error handling: errors propagate to the test."""
    args = build_parser().parse_args(argv)
    return args.func(args)


def test_fit_generator_then_run(tmp_path, capsys, one_thread):
    gen = tmp_path / "gen"
    assert _main(["synth", "fit-generator", "digits", "--out", str(gen), "--train-samples", "150", "--width", "8",
                  "--train-steps", "3", "--batch-size", "8", "--sample-steps", "2", "--device", "cpu", "-q",
                  "--json"]) == 0
    fitted = json.loads(capsys.readouterr().out)
    assert fitted["trained_steps"] == 3 and fitted["train"]["samples"] + fitted["validation_samples"] == 150
    assert json.loads((gen / "generator.json").read_text())["num_samples"] < 150  # the validation split is held out
    out = tmp_path / "support"
    assert _main(["-q", "synth", "run", "digits", "--generator", f"local:{gen}", "--agent", "ppo", "--out", str(out),
                  "--train-samples", "150", "--budget", "8", "--images-per-step", "2", "--pretrain-epochs", "1",
                  "--arch", "smallcnn-4", "--ppo-n-steps", "2", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "support set of 8 images in 4 steps" in text and "PPO policy updates: 2" in text
    assert len(json.loads((out / "manifest.json").read_text())["images"]) == 8


def test_bad_arguments(tmp_path):
    with pytest.raises(SystemExit):
        _main(["synth", "run", "digits", "--out", str(tmp_path)])  # --generator is required
    with pytest.raises(ConfigError, match="train-samples"):
        _main(["synth", "fit-generator", "digits", "--out", str(tmp_path / "g"), "--train-samples", "0"])

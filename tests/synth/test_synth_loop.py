import json

import pytest
from _synth_fixtures import MeanGenerator, digits_split, tiny_config

import drkit
from drkit.errors import ConfigError
from drkit.synth import run_synth


def test_run_writes_the_support_set_and_summary(tmp_path, one_thread):
    train, val = digits_split()
    gen = MeanGenerator(train)
    s = run_synth(train, gen, tmp_path / "s", agent="bandit", val=val, config=tiny_config(), progress=False)
    assert s["images"] == 20 and s["steps"] == 4 and len(s["history"]) == 4
    assert {"reward", "delta_accuracy", "delta_entropy"} <= set(s["history"][0])
    assert s["favoured_prompts"] and s["settings"]["val"]["samples"] == len(val)
    folder = drkit.load_dataset(f"imagefolder:{tmp_path / 's'}")
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert len(folder) == 20 and manifest["agent"] == "bandit" and gen.calls == 4  # loaded once, one call a step
    # finished: a rerun returns it; other settings are refused
    assert run_synth(train, gen, tmp_path / "s", agent="bandit", val=val, config=tiny_config(), progress=False) == s
    with pytest.raises(ConfigError, match="other settings"):
        run_synth(train, gen, tmp_path / "s", agent="random", val=val, config=tiny_config(), progress=False)


def test_carved_validation_and_teacher_labels(tmp_path, digits_teacher, one_thread):
    train, _ = digits_split(260, 40)
    s = run_synth(train, MeanGenerator(train), tmp_path / "s", agent="random", teacher=digits_teacher,
                  config=tiny_config(budget=10, synthetic_label="teacher"), progress=False)
    assert s["settings"]["train"]["samples"] + s["settings"]["val"]["samples"] == len(train)
    with pytest.raises(ConfigError, match="teacher"):
        run_synth(train, MeanGenerator(train), tmp_path / "t", agent="random",
                  config=tiny_config(synthetic_label="teacher"), progress=False)
    with pytest.raises(ConfigError, match="agent"):
        run_synth(train, MeanGenerator(train), tmp_path / "u", agent="dqn", config=tiny_config(), progress=False)

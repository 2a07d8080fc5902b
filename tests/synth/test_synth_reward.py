import numpy as np
import pytest
from _synth_fixtures import digits_split, tiny_builder

import drkit.synth.builder as builder_mod
import drkit.synth.reward as reward_mod
from drkit.errors import ConfigError
from drkit.synth import Prompt, SynthConfig, Validation, compute_reward, split_validation


def test_reward_is_accuracy_gain_minus_weighted_entropy_gain():
    a = Validation(0.80, 0.50, (0.8, 0.8))
    b = Validation(0.83, 0.40, (0.9, 0.76))
    r = compute_reward(a, b, 0.5)
    assert r.delta_accuracy == pytest.approx(0.03) and r.delta_entropy == pytest.approx(-0.10)
    assert r.value == pytest.approx(0.03 + 0.5 * 0.10)
    assert compute_reward(a, b, 0.0).value == pytest.approx(0.03)
    with pytest.raises(ConfigError):
        compute_reward(a, b, -1.0)


def test_validation_split_is_stratified_and_disjoint():
    train, val = digits_split(200, 100)
    assert len(train) + len(val) == 300 and abs(len(val) - 100) <= 5
    rows = {r.tobytes() for r in train.images.reshape(len(train), -1)}
    assert not any(r.tobytes() in rows for r in val.images.reshape(len(val), -1))
    per_class = np.bincount(train.labels, minlength=10) + np.bincount(val.labels, minlength=10)
    np.testing.assert_array_equal(np.bincount(val.labels, minlength=10), np.round(per_class / 3).astype(int))
    t2, v2 = split_validation(train, 0.5, seed=0)
    assert len(t2) + len(v2) == len(train)


def test_reward_looks_at_the_validation_split_only(monkeypatch, one_thread):
    seen = []
    real_predict = reward_mod.predict_probs

    def spy(model, dataset, **kw):
        seen.append(dataset)
        return real_predict(model, dataset, **kw)

    monkeypatch.setattr(reward_mod, "predict_probs", spy)
    b = tiny_builder()
    result = b.step(Prompt(0, (3, 3, 3)))
    assert seen and all(d is b.val for d in seen)
    # and the reward is a function of the validation labels: relabel val, the same step scores otherwise
    assert result.reward.delta_accuracy == pytest.approx(result.validation.accuracy - b.initial_validation.accuracy)
    b.val.labels = (b.val.labels + 1) % 10
    b.reset(0)
    b.initial_validation = b.validation = reward_mod.validate(b.model, b.val)
    other = b.step(Prompt(0, (3, 3, 3)))
    assert other.validation.accuracy != result.validation.accuracy


def test_probe_reward_looks_at_the_validation_split_only(monkeypatch, one_thread):
    seen = []
    real_predict = reward_mod.predict_probs
    monkeypatch.setattr(reward_mod, "predict_probs", lambda model, dataset, **kw: seen.append(dataset)
                        or real_predict(model, dataset, **kw))
    b = tiny_builder(reward_signal="probe")
    seen.clear()  # the pretrained classifier's validation
    b.step(Prompt(0, (3, 3, 3)))
    assert len(seen) == 3 and all(d is b.val for d in seen)  # control probe, treated probe, the step's own


def test_probe_reward_is_what_the_images_teach_not_the_steps_training(monkeypatch, one_thread):
    prompt = Prompt(0, (3, 3, 3))
    b, step = tiny_builder(reward_signal="probe"), tiny_builder()  # step: the paper's reward
    first, first_step = b.step(prompt), step.step(prompt)
    assert first.reward.value != 0 and first_step.reward.value != 0
    b.reset(0)  # the same classifier and image seeds
    step.reset(0)
    monkeypatch.setattr(builder_mod.Trainer, "run_epoch", lambda self, **kw: None)
    again = b.step(prompt)
    assert again.validation == b.initial_validation  # the step trained nothing...
    assert again.reward == first.reward  # ...and the probe reward did not notice,
    assert step.step(prompt).reward.value == 0  # while the step reward is that training's effect


def test_probe_reward_settings_are_checked():
    with pytest.raises(ConfigError, match="reward_signal"):
        SynthConfig(reward_signal="epoch")
    with pytest.raises(ConfigError, match="probe_steps"):
        SynthConfig(reward_signal="probe", probe_steps=0)

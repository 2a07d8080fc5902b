import numpy as np
import pytest
from _synth_fixtures import tiny_builder
from gymnasium.utils.env_checker import check_env

from drkit.errors import ConfigError
from drkit.synth.env import SupportSetEnv


@pytest.fixture()
def env(one_thread):
    return SupportSetEnv(tiny_builder())


def test_passes_gymnasiums_checker(env):
    check_env(env, skip_render_check=True)
    assert env.observation_space.shape == (11,)
    assert list(env.action_space.nvec) == [2, 10, 10, 10]


def test_one_class_slot_env_passes_the_checker_and_asks_for_clean_examples(one_thread):
    env = SupportSetEnv(tiny_builder(class_slots=1))
    check_env(env, skip_render_check=True)
    assert list(env.action_space.nvec) == [2, 10]
    env.reset(seed=0)
    env.step(np.array([1, 7]))
    step = env.builder.history[-1]
    assert step.prompt.classes == (7, 7, 7) and step.prompt.domain == 1
    assert set(env.builder.support.labelled().labels.tolist()) == {7}


def test_budget_is_respected_and_observed(env):
    obs, _ = env.reset(seed=0)
    assert obs[-1] == 0.0 and env.observation_space.contains(obs)
    done, steps = False, 0
    while not done:
        obs, reward, done, truncated, info = env.step(np.array([0, steps % 10, 1, 2]))
        steps += 1
        assert np.isfinite(reward) and not truncated and info["images"] == 5
    assert steps == 4 and env.builder.used == 20 and obs[-1] == 1.0
    with pytest.raises(ConfigError, match="budget"):
        env.step(np.array([0, 0, 0, 0]))


def test_last_step_makes_only_what_is_left(one_thread):
    env = SupportSetEnv(tiny_builder(budget=12))
    env.reset(seed=0)
    sizes = [env.step(np.array([0, 1, 1, 1]))[4]["images"] for _ in range(3)]
    assert sizes == [5, 5, 2] and env.builder.done


def test_reset_keeps_the_finished_episode_and_restores_the_classifier(env):
    env.reset(seed=0)
    first = env.step(np.array([0, 1, 2, 3]))[0]
    assert len(env.builder.support) == 5
    env.reset(seed=0)
    assert len(env.finished) == 1 and len(env.finished[0].support) == 5 and len(env.builder.support) == 0
    np.testing.assert_array_equal(env.step(np.array([0, 1, 2, 3]))[0], first)  # same seed, same step

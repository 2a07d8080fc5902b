import pytest
from _synth_fixtures import tiny_builder

from drkit.errors import ConfigError
from drkit.synth.agents import AGENTS, make_agent
from drkit.synth.env import SupportSetEnv


@pytest.mark.parametrize("name", AGENTS)
def test_every_agent_spends_exactly_the_budget(name, one_thread):
    env = SupportSetEnv(tiny_builder(budget=30))
    stats = make_agent(name, seed=1).run(env)
    ep = env.last_episode()
    assert stats["agent"] == name
    assert len(ep.support) == 30 and len(ep.history) == 6 and sum(r.images for r in ep.history) == 30


@pytest.mark.parametrize("name", AGENTS)
def test_every_agent_acts_in_the_one_class_slot_space(name, one_thread):
    env = SupportSetEnv(tiny_builder(budget=20, class_slots=1))
    make_agent(name, seed=0, **({"n_steps": 2, "batch_size": 2, "n_epochs": 1} if name == "ppo" else {})).run(env)
    history = env.last_episode().history
    assert len(history) == 4 and all(len(set(r.prompt.classes)) == 1 for r in history)


def test_ppo_updates_its_policy_within_the_budget(one_thread):
    env = SupportSetEnv(tiny_builder(budget=40))  # 8 steps
    stats = make_agent("ppo", seed=0, n_steps=4, batch_size=2, n_epochs=2).run(env)
    assert stats["policy_updates"] == 2 and stats["gradient_steps"] == 2 * 2 * 2
    assert len(env.last_episode().support) == 40


def test_ppo_rollout_never_runs_past_the_budget(one_thread):
    env = SupportSetEnv(tiny_builder(budget=35))  # 7 steps: a rollout of 8 would start a second episode
    stats = make_agent("ppo", seed=0, n_steps=8).run(env)
    assert stats["n_steps"] == 7 and len(env.last_episode().support) == 35 and not env.finished[:-1]


def test_bandit_is_deterministic_under_its_seed(one_thread):
    runs = []
    for _ in range(2):
        env = SupportSetEnv(tiny_builder())
        make_agent("bandit", seed=3).run(env)
        runs.append([r.prompt for r in env.last_episode().history])
    assert runs[0] == runs[1]


def test_unknown_agent_or_option_raises():
    with pytest.raises(ConfigError):
        make_agent("dqn")
    with pytest.raises(ConfigError):
        make_agent("random", temperature=2)
    with pytest.raises(ConfigError):
        make_agent("ppo", n_steps=1)

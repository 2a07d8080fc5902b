"""Agents that spend the image budget of a :class:`~drkit.synth.env.SupportSetEnv`, all under the
same budget and step size:

- ``ppo``: Stable-Baselines3 PPO (Schiavone & Li's agent). Its rollout is a few steps long
  (``n_steps`` divides the episode) so the policy is updated several times within one budget —
  the reference code's rollout was longer than the budget and never updated. ``policy_updates``
  in the returned stats counts them.
- ``bandit``: factorised linear Thompson sampling, one head per action slot (the domain, then three
  classes or one). The domain head has one weight per domain; each class head scores class ``c``
  with a per-class weight plus a shared weight on ``c``'s validation error (the context), so it can
  learn "ask for weak classes".
- ``random``: uniform over the action space.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError
from .generators import require

if TYPE_CHECKING:  # gymnasium is imported where an environment is made, not here
    from .env import SupportSetEnv

__all__ = ["AGENTS", "Agent", "RandomAgent", "BanditAgent", "PPOAgent", "make_agent"]

log = logging.getLogger(__name__)

AGENTS = ("ppo", "bandit", "random")


class Agent(ABC):
    """Runs one episode — the whole image budget — in an environment."""

    name: str

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed

    @abstractmethod
    def run(self, env: SupportSetEnv) -> dict[str, Any]:
        """Step ``env`` from a reset until its budget is spent; return the agent's own statistics."""


class RandomAgent(Agent):
    name = "random"

    def run(self, env: SupportSetEnv) -> dict[str, Any]:
        rng = np.random.default_rng(self.seed)
        env.reset(seed=self.seed)
        done = False
        while not done:
            _, _, done, _, _ = env.step(rng.integers(env.action_space.nvec))
        return {"agent": self.name}


class _LinearThompsonHead:
    """Bayesian linear regression ``r ~ θ·φ(arm)`` with a N(0, I) prior; samples θ to choose."""

    def __init__(self, dim: int, noise: float) -> None:
        self.precision = np.eye(dim)
        self.b = np.zeros(dim)
        self.noise = noise

    def choose(self, features: np.ndarray, rng: np.random.Generator) -> int:
        cov = np.linalg.inv(self.precision)
        theta = rng.multivariate_normal(cov @ self.b, self.noise**2 * cov)
        return int(np.argmax(features @ theta))

    def mean_scores(self, features: np.ndarray) -> np.ndarray:
        return features @ np.linalg.solve(self.precision, self.b)

    def update(self, phi: np.ndarray, reward: float) -> None:
        self.precision += np.outer(phi, phi)
        self.b += reward * phi


class BanditAgent(Agent):
    """Factorised linear Thompson sampling (module docstring). Rewards are standardised by their
    running mean and deviation so one prior fits every reward scale."""

    name = "bandit"

    def __init__(self, *, seed: int = 0, noise: float = 0.5) -> None:
        super().__init__(seed=seed)
        if noise <= 0:
            raise ConfigError(f"bandit noise must be > 0, got {noise}")
        self.noise = noise

    @staticmethod
    def _features(head: int, obs: np.ndarray, num_domains: int, num_classes: int) -> np.ndarray:
        if head == 0:
            return np.eye(num_domains)
        error = 1.0 - obs[:num_classes].astype(np.float64)
        return np.concatenate([np.eye(num_classes), error[:, None]], axis=1)

    def run(self, env: SupportSetEnv) -> dict[str, Any]:
        rng = np.random.default_rng(self.seed)
        D, C = env.num_domains, env.num_classes
        slots = len(env.action_space.nvec)  # the domain and 3 (or 1) class slots
        heads = [_LinearThompsonHead(D, self.noise)] + [_LinearThompsonHead(C + 1, self.noise) for _ in range(slots - 1)]
        obs, _ = env.reset(seed=self.seed)
        rewards: list[float] = []
        done = False
        while not done:
            feats = [self._features(h, obs, D, C) for h in range(slots)]
            action = np.array([head.choose(f, rng) for head, f in zip(heads, feats, strict=True)])
            obs, reward, done, _, _ = env.step(action)
            rewards.append(reward)
            scale = float(np.std(rewards)) if len(rewards) > 1 and np.std(rewards) > 0 else 1.0
            z = (reward - float(np.mean(rewards))) / scale if len(rewards) > 1 else 0.0
            for head, f, a in zip(heads, feats, action, strict=True):
                head.update(f[a], z)
        final = [self._features(h, obs, D, C) for h in range(slots)]
        greedy = [int(np.argmax(head.mean_scores(f))) for head, f in zip(heads, final, strict=True)]
        return {"agent": self.name, "greedy_action": greedy,
                "class_error_weight": [float(np.linalg.solve(h.precision, h.b)[-1]) for h in heads[1:]]}


class PPOAgent(Agent):
    """Stable-Baselines3 PPO with a small MLP; ``n_steps`` is lowered to a divisor of the episode
    length so that no rollout runs past the budget."""

    name = "ppo"

    def __init__(self, *, seed: int = 0, n_steps: int = 8, batch_size: int = 8, n_epochs: int = 10,
                 learning_rate: float = 1e-3, gamma: float = 0.9, ent_coef: float = 0.01) -> None:
        super().__init__(seed=seed)
        if n_steps < 2 or batch_size < 1 or n_epochs < 1:
            raise ConfigError(f"PPO needs n_steps >= 2, batch_size >= 1, n_epochs >= 1; got {n_steps}, "
                              f"{batch_size}, {n_epochs}")
        self.n_steps, self.batch_size, self.n_epochs = n_steps, batch_size, n_epochs
        self.learning_rate, self.gamma, self.ent_coef = learning_rate, gamma, ent_coef

    def run(self, env: SupportSetEnv) -> dict[str, Any]:
        PPO = require("stable_baselines3").PPO  # noqa: N806
        steps = env.builder.config.num_steps
        n_steps = max((d for d in range(2, min(self.n_steps, steps) + 1) if steps % d == 0), default=steps)
        if steps < 2:
            raise ConfigError(f"PPO needs an episode of >= 2 steps; the budget gives {steps}")
        batch = max(d for d in range(1, min(self.batch_size, n_steps) + 1) if n_steps % d == 0)
        model = PPO("MlpPolicy", env, n_steps=n_steps, batch_size=batch, n_epochs=self.n_epochs,
                    learning_rate=self.learning_rate, gamma=self.gamma, ent_coef=self.ent_coef, seed=self.seed,
                    device="cpu", verbose=0, policy_kwargs={"net_arch": [32, 32]})
        model.learn(total_timesteps=steps)
        updates = model._n_updates // self.n_epochs  # SB3 counts gradient epochs; one update = one rollout's
        if updates < 2:
            log.warning("PPO updated its policy only %d time(s) within the budget", updates)
        start = env.builder.initial_validation  # the policy's favourite action at an episode's start
        first = np.append(np.nan_to_num(np.asarray(start.per_class_accuracy), nan=0.0), 0.0).astype(np.float32)
        action, _ = model.predict(first, deterministic=True)
        return {"agent": self.name, "policy_updates": int(updates), "n_steps": n_steps, "batch_size": batch,
                "gradient_steps": int(model._n_updates * (n_steps // batch)), "greedy_action": [int(a) for a in action]}


def make_agent(name: str, *, seed: int = 0, **options: Any) -> Agent:
    """``ppo``, ``bandit`` or ``random``; ``options`` go to the agent's constructor."""
    cls = {"ppo": PPOAgent, "bandit": BanditAgent, "random": RandomAgent}.get(name)
    if cls is None:
        raise ConfigError(f"unknown agent {name!r}: use one of {', '.join(AGENTS)}")
    try:
        return cls(seed=seed, **options)
    except TypeError as e:
        raise ConfigError(f"agent {name}: {e}") from e

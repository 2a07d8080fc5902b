"""The support-set task as a gymnasium environment, for any agent (Stable-Baselines3 or our own).

- action: ``MultiDiscrete([domains, C, C, C])`` — "A {domain} of a {c1}, {c2}, and {c3}" — or, with
  ``SynthConfig.class_slots=1``, ``MultiDiscrete([domains, C])`` — "A {domain} of a {c}, {c}, and {c}";
- observation: per-class validation accuracy and the share of the budget used, ``(C + 1,)`` in [0, 1];
- reward: :func:`drkit.synth.reward.compute_reward` after the step's images are added and the
  classifier trained on them;
- an episode ends (``terminated``) when the image budget is spent.

``reset`` keeps the episode it ends in :attr:`SupportSetEnv.finished` (SB3 resets a finished
episode on its own, and the support set it built must not be lost).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .builder import StepResult, SupportSetBuilder
from .generators import require
from .prompts import Prompt, action_space_sizes
from .support import SupportSet

gym = require("gymnasium")

__all__ = ["SupportSetEnv", "Episode"]


@dataclass
class Episode:
    """A finished (or the current) episode: its support set and step log."""

    support: SupportSet
    history: list[StepResult]
    seed: int


class SupportSetEnv(gym.Env):  # type: ignore[misc,name-defined]
    """Gymnasium view of a :class:`SupportSetBuilder` (which holds the classifier and generator)."""

    metadata = {"render_modes": []}

    def __init__(self, builder: SupportSetBuilder, *, on_step: Callable[[StepResult], None] | None = None) -> None:
        super().__init__()
        self.builder = builder
        self.num_domains = len(builder.generator.domains)
        self.num_classes = builder.num_classes
        self.class_slots = builder.config.class_slots
        self.action_space = gym.spaces.MultiDiscrete(action_space_sizes(self.num_domains, self.num_classes,
                                                                        self.class_slots))
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(self.num_classes + 1,), dtype=np.float32)
        self.on_step = on_step
        self.finished: list[Episode] = []

    def current(self) -> Episode:
        b = self.builder
        return Episode(b.support, list(b.history), b.episode_seed)

    def last_episode(self) -> Episode:
        """The current episode if it has steps, else the last finished one."""
        if self.builder.history or not self.finished:
            return self.current()
        return self.finished[-1]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if self.builder.history:
            self.finished.append(self.current())
        self.builder.reset(seed)
        return self.builder.observation(), {"val_accuracy": self.builder.validation.accuracy}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        prompt = Prompt.from_action(action, num_domains=self.num_domains, num_classes=self.num_classes,
                                    class_slots=self.class_slots)
        result = self.builder.step(prompt)
        if self.on_step is not None:
            self.on_step(result)
        info = result.to_dict()
        return self.builder.observation(), float(result.reward.value), self.builder.done, False, info

"""Compact synthetic support sets (Schiavone & Li, "Reinforcement Learning with Generative Models
for Compact Support Sets", arXiv 2404.16300).

An agent composes prompts "A {domain} of a {class}, {class}, and {class}", a generator turns each
into a few images, the classifier trains on real + synthetic data, and the agent is rewarded by
the validation gain. Modules, in the order data flows:

- :mod:`~drkit.synth.prompts`: the prompt template and its ids;
- :mod:`~drkit.synth.generators`: the generator interface and the diffusers text-to-image one;
- :mod:`~drkit.synth.local`: the offline class-conditional diffusion generator (``fit-generator``);
- :mod:`~drkit.synth.reward`: validation numbers and the reward;
- :mod:`~drkit.synth.builder`: classifier + support set, one step at a time;
- :mod:`~drkit.synth.env`: the gymnasium environment; :mod:`~drkit.synth.agents`: PPO, bandit, random;
- :mod:`~drkit.synth.support`: the support set on disk, and training on real + synthetic data;
- :mod:`~drkit.synth.loop`: :func:`run_synth`, all of it in one call.

Needs ``pip install 'drkit[synth]'`` (diffusers, transformers, gymnasium, stable-baselines3);
importing this package does not: each is imported where it is used, with an error that says so.
"""

from typing import Any

from .builder import SupportSetBuilder, SynthConfig, split_validation
from .generators import DiffusersGenerator, Generator
from .local import LocalDiffusionConfig, LocalGenerator, fit_local_generator
from .prompts import DEFAULT_DOMAINS, Prompt, format_prompt
from .registry import load_generator
from .reward import Reward, Validation, compute_reward, validate
from .support import load_support_set, support_training_set, write_support_set

__all__ = [
    "DEFAULT_DOMAINS",
    "Prompt",
    "format_prompt",
    "Generator",
    "DiffusersGenerator",
    "load_generator",
    "LocalDiffusionConfig",
    "LocalGenerator",
    "fit_local_generator",
    "Validation",
    "Reward",
    "validate",
    "compute_reward",
    "SynthConfig",
    "SupportSetBuilder",
    "split_validation",
    "run_synth",
    "write_support_set",
    "load_support_set",
    "support_training_set",
]


def __getattr__(name: str) -> Any:  # run_synth imports gymnasium: only when it is asked for
    if name == "run_synth":
        from .loop import run_synth

        return run_synth
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""``run_synth``: one call from real data and a generator to a written support set.

    real data ─► (train, val) split ─► classifier pretrained on train
    agent ─► prompt ─► generator (loaded once) ─► images ─► train on real + synthetic ─► reward (val)

The output folder is a support set (:mod:`drkit.synth.support`) plus ``synth.json``: the settings,
every step's prompt and reward terms, the prompts the agent favoured, the agent's own statistics
(PPO: policy updates) and wall times. A finished folder with the same settings is returned as is.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from torch import nn

from .._progress import progress_bar
from ..data import ImageDataset, load_dataset
from ..errors import ConfigError
from ..reinforcement.teachers import prepare_teacher
from .agents import make_agent
from .builder import StepResult, SupportSetBuilder, SynthConfig, favoured_prompts, split_validation
from .env import SupportSetEnv
from .generators import Generator
from .registry import load_generator
from .support import write_support_set

__all__ = ["run_synth", "SUMMARY"]

log = logging.getLogger(__name__)

SUMMARY = "synth.json"


def _settings(train: ImageDataset, val: ImageDataset, generator: Generator, agent: str, config: SynthConfig,
              agent_options: dict[str, Any], teacher: Any) -> dict[str, Any]:
    return {"train": {"name": train.name, "samples": len(train)}, "val": {"name": val.name, "samples": len(val)},
            "generator": generator.describe(), "domains": list(generator.domains), "agent": agent,
            "agent_options": agent_options, "teacher": teacher if isinstance(teacher, (str, type(None))) else
            type(teacher).__name__, "config": {k: v for k, v in asdict(config).items() if k != "device"}}


def run_synth(data: str | ImageDataset, generator: str | Generator, out: str | os.PathLike[str], *,
              agent: str = "ppo", config: SynthConfig | None = None, val: str | ImageDataset | None = None,
              teacher: str | nn.Module | Sequence[str | nn.Module] | None = None, domains: Sequence[str] | None = None,
              agent_options: dict[str, Any] | None = None, progress: bool = True) -> dict[str, Any]:
    """Build a support set for ``data`` with ``agent`` and write it to ``out``; returns the summary.

    Args:
        data: the real training data (a validation split is carved from it unless ``val`` is given).
        generator: ``local:DIR``, ``diffusers:PATH_OR_ID`` or a :class:`Generator`.
        out: a new directory: the support set (image folder + ``manifest.json``) and ``synth.json``.
        agent: ``ppo``, ``bandit`` or ``random``; ``agent_options`` go to its constructor.
        config: budget, step size, classifier, reward weight (:class:`SynthConfig`).
        val: held-out real data for the reward; never pass the test set.
        teacher: teacher spec(s) for ``config.synthetic_label == "teacher"``.
        domains: the prompt domains (default: the generator's).
    """
    cfg = config or SynthConfig()
    agent_options = dict(agent_options or {})
    t0 = time.perf_counter()
    dataset = load_dataset(data)
    if val is None:
        train, val_set = split_validation(dataset, cfg.val_fraction, seed=cfg.split_seed)
    else:
        train, val_set = dataset, load_dataset(val)
    gen = load_generator(generator, class_names=train.classes, image_shape=train.image_shape, domains=domains,
                         device=cfg.device)
    trained_on = getattr(gen, "trained_on", None)
    if trained_on is not None and trained_on != train.name:
        log.warning("the generator was fitted on %s, the classifier trains on %s: if the generator saw validation "
                    "images the reward is biased (use the same --train-samples, --val-fraction and split seed)",
                    trained_on, train.name)
    settings = _settings(train, val_set, gen, agent, cfg, agent_options, teacher)
    root = Path(out)
    if (root / SUMMARY).is_file():
        summary = json.loads((root / SUMMARY).read_text())
        if summary.get("settings") == settings:
            log.info("%s is already complete: nothing to do", root)
            return summary
        raise ConfigError(f"{root} holds a support set made with other settings; choose another --out or delete it")
    if root.exists() and any(root.iterdir()):
        raise ConfigError(f"--out {root} exists and is not empty; choose a new directory")
    ensemble = None
    if teacher is not None:

        ensemble = prepare_teacher(teacher, train, temperature=1.0)[0]
    make = make_agent(agent, seed=cfg.seed, **agent_options)  # fails on a bad agent before any training

    builder = SupportSetBuilder(train, val_set, gen, cfg, teacher=ensemble, progress=progress)
    setup_seconds = time.perf_counter() - t0
    bar = progress_bar(cfg.num_steps, desc=f"synth {agent}", unit="step", enabled=progress)

    def on_step(r: StepResult) -> None:
        bar.update(1)
        bar.set_postfix(val=f"{r.validation.accuracy:.3f}", reward=f"{r.reward.value:+.4f}", refresh=False)

    env = SupportSetEnv(builder, on_step=on_step)
    t1 = time.perf_counter()
    try:
        stats = make.run(env)
    finally:
        bar.close()
    episode = env.last_episode()
    if len(episode.support) != min(cfg.budget, cfg.num_steps * cfg.images_per_step):
        raise ConfigError(f"the agent spent {len(episode.support)} images of a budget of {cfg.budget}")
    history = [r.to_dict() for r in episode.history]
    summary = {
        "settings": settings, "agent_stats": stats, "images": len(episode.support), "steps": len(history),
        "initial_validation": asdict(builder.initial_validation),
        "final_validation": asdict(episode.history[-1].validation),
        "favoured_prompts": favoured_prompts(history), "history": history,
        "seconds": {"setup": setup_seconds, "agent": time.perf_counter() - t1, "total": time.perf_counter() - t0},
    }
    write_support_set(root, episode.support, train.classes, info={"generator": settings["generator"],
                                                                   "agent": agent, "domains": settings["domains"]})
    text = json.dumps(summary, indent=2)
    (root / SUMMARY).write_text(text + "\n")
    return json.loads(text)  # what a rerun returns: lists, not tuples

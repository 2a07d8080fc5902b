"""How much of a step's reward is the prompt, and how much is noise? For ``reward_signal`` "step"
and "probe": one pretrained classifier, every domain × every pure-class prompt, each stepped twice
from the same classifier with two image seeds (``reset(seed)``). Reports the correlation of the two
rewards over prompts and the variance between prompts over the variance between image seeds.

    python -m benchmarks.synth.reward_noise --generator runs/synth-quick/generator

A reward an agent can learn from varies between prompts far more than between draws of the same
prompt. Note that "step" here repeats the epoch's shuffling for both draws (its training seed is the
step's), so its seed-to-seed variance is a lower bound on its real noise.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from benchmarks.synth.synth_harness import PROFILES, load_data
from drkit.synth import Prompt, SupportSetBuilder, SynthConfig
from drkit.synth.local import LocalGenerator


def main() -> None:
    ap = argparse.ArgumentParser(description="signal and noise of the synth rewards")
    ap.add_argument("--generator", type=Path, required=True, help="a local generator folder (fit-generator's --out)")
    ap.add_argument("--profile", default="quick", choices=sorted(PROFILES), help="its data split and classifier")
    ap.add_argument("--out", type=Path, help="write the numbers here as JSON")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    p = PROFILES[args.profile]
    train, val, _, _ = load_data(p)
    gen = LocalGenerator.load(args.generator)
    cfg = SynthConfig(arch=p.arch, pretrain_epochs=p.pretrain_epochs, epochs_per_step=p.epochs_per_step,
                      entropy_weight=p.entropy_weight, batch_size=p.batch_size, seed=0)
    builder = SupportSetBuilder(train, val, gen, cfg)
    prompts = [Prompt(d, (c, c, c)) for d in range(len(gen.domains)) for c in range(train.num_classes)]
    domains = np.array([q.domain for q in prompts])
    result = {"generator": str(args.generator), "profile": args.profile, "prompts": len(prompts)}
    for signal in ("step", "probe"):
        builder.config = replace(cfg, reward_signal=signal)
        t0 = time.perf_counter()
        r = np.array([[_reward(builder, q, seed) for seed in (1, 2)] for q in prompts])
        within = float(np.mean((r[:, 0] - r[:, 1]) ** 2 / 2))  # variance between the two draws of a prompt
        between = float(np.var(r.mean(axis=1)))
        result[signal] = {"correlation": float(np.corrcoef(r[:, 0], r[:, 1])[0, 1]), "between_variance": between,
                          "within_variance": within, "between_over_within": between / within,
                          "mean": float(r.mean()), "seconds": time.perf_counter() - t0,
                          "per_domain": {name: float(r[domains == d].mean()) for d, name in enumerate(gen.domains)}}
        print(f"{signal:5s}: correlation between image seeds {result[signal]['correlation']:+.2f}, "
              f"variance between prompts / between seeds {between / within:.1f}, mean reward {r.mean():+.4f}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


def _reward(builder: SupportSetBuilder, prompt: Prompt, seed: int) -> float:
    builder.reset(seed)
    return builder.step(prompt).reward.value


if __name__ == "__main__":
    main()

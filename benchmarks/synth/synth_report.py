"""Markdown report of benchmarks/synth/synth_harness.py: numbers, goal checks and favoured prompts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from drkit.synth import SynthConfig

ARMS = {
    "none": "none (real only)",
    "none-equal-steps": "none, as many steps as with 400 images",
    "random": "random agent",
    "bandit": "bandit agent (linear Thompson)",
    "ppo": "PPO agent (SB3)",
    "ppo+prompt-mix": "PPO support set, prompt-mix soft labels (0.6/0.2/0.2)",
    "ppo+teacher": "PPO support set, teacher soft labels",
    "random+teacher": "random agent's support set, teacher soft labels",
    "bandit+teacher": "bandit's support set, teacher soft labels",
}
LEARNED = ("bandit", "ppo")  # agents that learn, labelled like the random agent's images
SUPPORT_ARMS = ("random", "bandit", "ppo", "ppo+prompt-mix", "ppo+teacher", "random+teacher", "bandit+teacher")


def _ms(values: list[float], scale: float = 100.0, digits: int = 2) -> str:
    v = np.asarray(values, dtype=np.float64) * scale
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.{digits}f}"


def _table(results: dict[str, Any]) -> tuple[list[str], dict[str, float]]:
    by_arm: dict[str, list[dict[str, Any]]] = {}
    for row in results["final"]:
        by_arm.setdefault(row["arm"], []).append(row)
    agent_secs: dict[str, list[float]] = {}
    for a in results["agents"]:
        agent_secs.setdefault(a["agent"], []).append(a["seconds"]["total"])
    means = {arm: float(np.mean([r["top1"] for r in rows])) for arm, rows in by_arm.items()}
    base = means.get("none", float("nan"))
    lines = ["| arm | test top-1 (%) | Δ vs none (points) | NLL | ECE | seeds | agent loop (s / seed) | final training (s / seed) |",
             "|---|---|---|---|---|---|---|---|"]
    for arm, rows in by_arm.items():
        agent = arm.split("+")[0] if arm not in ("none", "none-equal-steps") else None
        loop = f"{np.mean(agent_secs[agent]):.0f}" if agent in agent_secs else "–"
        lines.append(f"| {ARMS.get(arm, arm)} | {_ms([r['top1'] for r in rows])} | {100 * (means[arm] - base):+.2f} | "
                     f"{_ms([r['nll'] for r in rows], 1, 3)} | {_ms([r['ece'] for r in rows], 1, 3)} | {len(rows)} | "
                     f"{loop} | {np.mean([r['train_seconds'] for r in rows]):.0f} |")
    return lines, means


def _favoured(results: dict[str, Any], domains: list[str]) -> list[str]:
    lines = []
    for agent in ("random", "bandit", "ppo"):
        runs = [a for a in results["agents"] if a["agent"] == agent]
        if not runs:
            continue
        steps = [h for a in runs for h in a["history"]]
        dom = Counter(domains[h["domain"]] for h in steps)
        first = Counter(h["prompt"].split(" of a ")[1].split(",")[0] for h in steps)
        pure = np.mean([len(set(h["classes"])) == 1 for h in steps])
        prompts = Counter(h["prompt"] for h in steps).most_common(5)
        updates = [a["agent_stats"].get("policy_updates") for a in runs]
        lines.append(f"**{agent}** ({len(runs)} runs × {len(steps) // len(runs)} steps"
                     + (f"; PPO policy updates per run: {updates}" if agent == "ppo" else "") + ")")
        lines.append("- domains: " + ", ".join(f"{d} {n / len(steps):.0%}" for d, n in dom.most_common()))
        lines.append("- first (dominant) class: " + ", ".join(f"{c} {n / len(steps):.0%}" for c, n in first.most_common(5)))
        lines.append(f"- prompts naming one class three times: {pure:.0%}")
        lines.append("- most used prompts: " + "; ".join(f"“{p}” ×{n}" for p, n in prompts))
        r = [h["reward"] for h in steps]
        lines.append(f"- reward per step: mean {np.mean(r):+.4f} (Δ accuracy {np.mean([h['delta_accuracy'] for h in steps]):+.4f}, "
                     f"Δ entropy {np.mean([h['delta_entropy'] for h in steps]):+.4f} nats); validation top-1 "
                     f"{np.mean([a['initial_validation']['accuracy'] for a in runs]):.2%} → "
                     f"{np.mean([a['final_validation']['accuracy'] for a in runs]):.2%}")
        lines.append("")
    return lines


def _names(agents: list[str]) -> str:
    """``["random", "ppo"]`` -> "the random agent's and PPO's": whose support sets the teacher labels."""
    names = {"random": "the random agent's", "bandit": "the bandit's", "ppo": "PPO's"}
    said = [names.get(a, f"{a}'s") for a in agents]
    return " and ".join([", ".join(said[:-1]), said[-1]] if len(said) > 1 else said)


def render(results: dict[str, Any], *, command: str, samples: Path | None = None) -> str:
    p, g, cas = results["profile"], results["generator"], results["cas"]
    teachers = p.get("teacher_agents", ["ppo"])  # older results: only PPO's support set had teacher labels
    table, means = _table(results)
    learned = max((a for a in LEARNED if a in means), key=means.get)
    best = max((a for a in SUPPORT_ARMS if a in means), key=means.get)
    vs_random = 100 * (means[learned] - means["random"])
    vs_none = 100 * (means[best] - means["none"])
    vs_steps = 100 * (means[best] - means.get("none-equal-steps", means["none"]))
    ok = lambda b: "**met**" if b else "**missed**"  # noqa: E731
    out = [
        "# Compact synthetic support sets on Fashion-MNIST (`drkit synth`)",
        "",
        f"Generated by `{command}` (cached arms; this call {results['wall_seconds_this_call'] / 60:.1f} min). "
        "Schiavone & Li (arXiv 2404.16300) with drkit's offline generator, in a limited-data regime.",
        "",
        "## Setup",
        "",
        f"- Real data: a stratified pool of {results['data']['train'] + results['data']['val']:,} Fashion-MNIST "
        f"training images, split into **{results['data']['train']:,} train** and **{results['data']['val']:,} "
        "validation** (the reward's only data). The real test split (10,000) is used by the final evaluation only.",
        f"- Classifier: `{p['arch']}`, pretrained {p['pretrain_epochs']} epochs on the train split; after every agent "
        f"step it trains {p['epochs_per_step']} epoch(s) on real + synthetic data.",
        f"- Budget: {p['budget']} images, {p['images_per_step']} per step ({p['budget'] // p['images_per_step']} steps). "
        f"Reward = Δ val accuracy − {p['entropy_weight']}·Δ mean val entropy"
        + (" of a probe: a copy of the classifier after "
           f"{SynthConfig.probe_steps} SGD steps (lr {SynthConfig.probe_lr:g}) on real training images plus the step's images, "
           "against the same probe on the real images alone (`reward_signal=\"probe\"`; the classifier still trains "
           "on real + synthetic data after every step)." if p.get("reward_signal") == "probe" else
           " across the step's training (the paper's).")
        + (" Actions name **one class** (`class_slots=1`, `MultiDiscrete([domains, C])`): every prompt is "
           "\"A {domain} of a c, c, and c\", a clean example, no three-class mixtures." if p.get("class_slots", 3) == 1
           else ""),
        f"- Evaluation: per seed a fresh `{p['arch']}` trained {p['final_epochs']} epochs on real (+ support set), "
        f"tested on the real test split; seeds {p['seeds']}. Synthetic images are labelled by their prompt's first "
        f"class, except in the teacher arms: {_names(teachers)} support set{'s' if len(teachers) > 1 else ''} reinforced "
        "(`drkit reinforce imagefolder:SUPPORT`, "
        f"cropflip × {p['num_augs']}) by a `{p['teacher_arch']}` teacher trained on the same {results['data']['train']:,} "
        f"train images (val top-1 {results['teacher']['val_top1']:.2%}).",
        "",
        "## Generator (offline, `drkit synth fit-generator`)",
        "",
        f"- Class-conditional diffusers `UNet2DModel` (width {p['generator']['width']}), {g['trained_steps']:,} steps of "
        f"batch {p['generator']['batch_size']} on "
        + (f"{g['num_samples']:,} other real training images, outside the pool: it never saw the train, validation "
           "or test images and knows more than the classifier's data (a stand-in for a generator pretrained on other "
           "data, as Stable Diffusion is in the paper)" if p.get("generator_images") else
           f"the {g['num_samples']:,} train images")
        + (f" ({g['seconds'] / 60:.1f} min)" if g.get("seconds") else "")
        + f"; DDIM {p['generator']['sample_steps']} steps, guidance {p['generator']['guidance_scale']}, "
        f"{cas['images_per_second']:.1f} images/s on this machine.",
        f"- **Classification Accuracy Score: {cas['cas']['top1']:.2%}** — `{p['arch']}` trained only on "
        f"{cas['images']:,} generated images (\"A photo of a c, c, and c\"), {p['cas_epochs']} epochs, tested on the real "
        f"test set. The same classifier trained on the {results['data']['train']:,} real train images: "
        f"{cas['real']['top1']:.2%}. Goal ≥ 70 %: {ok(cas['cas']['top1'] >= 0.70)}"
        + ("" if cas["images"] >= 10000 else f" (measured on {cas['images']:,} generated images, not 10,000)") + ".",
    ]
    if samples is not None:
        out += ["", f"![samples: a row per domain (photo, sketch, close-up, blurry), then three-class mixes]({samples})"]
    out += ["", "## Results (test top-1, mean ± std over seeds)", "", *table, "",
            "## Goals", "",
            f"- Best learning agent ({ARMS[learned]}) ≥ random + 0.5 points, both with first-class labels: "
            f"{vs_random:+.2f} → {ok(vs_random >= 0.5)}.",
            f"- Best support-set arm ({ARMS[best]}) ≥ none + 1 point: {vs_none:+.2f} → {ok(vs_none >= 1.0)}; "
            f"against none with as many optimisation steps: {vs_steps:+.2f} → {ok(vs_steps >= 1.0)}. The second "
            "comparison is the fair one: 400 more images per epoch are also 40 % more gradient steps.", "",
            "## What the agents favoured", "", *_favoured(results, g["domains"])]
    return "\n".join(out) + "\n"

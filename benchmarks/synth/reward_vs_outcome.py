"""Does an agent run's reward predict what its support set does in the final training?

For every agent run of the given ``synth_harness`` output folders: the mean reward per step against the
final classifier's test top-1 gain over "none" (same seed, first-class labels). Pearson and Spearman
correlation over all runs and within each folder. Reads ``results.json``; computes nothing new.

    python -m benchmarks.synth.reward_vs_outcome runs/synth-pretrained-probe runs/synth-pretrained6k-probe \
        runs/synth-pretrained6k-probe-one
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr


def pairs(results: dict[str, Any]) -> list[tuple[str, int, float, float]]:
    """``(agent, seed, mean reward per step, test top-1 gain over none in points)`` per agent run."""
    final = {(r["arm"], r["seed"]): r["top1"] for r in results["final"]}
    out = []
    for a in results["agents"]:
        reward = float(np.mean([h["reward"] for h in a["history"]]))
        gain = 100 * (final[a["agent"], a["seed"]] - final["none", a["seed"]])
        out.append((a["agent"], a["seed"], reward, gain))
    return out


def correlations(rows: list[tuple[str, int, float, float]]) -> dict[str, float]:
    x = np.array([r[2] for r in rows])
    y = np.array([r[3] for r in rows])
    rank = spearmanr(x, y)
    return {"runs": len(rows), "pearson": float(np.corrcoef(x, y)[0, 1]), "spearman": float(rank.statistic),
            "spearman_p": float(rank.pvalue)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="output folders of benchmarks/synth/synth_harness.py")
    args = ap.parse_args()
    every = []
    print("| runs | agent runs | Pearson | Spearman (p) |\n|---|---|---|---|")
    for run in args.runs:
        rows = pairs(json.loads((run / "results.json").read_text()))
        every += rows
        c = correlations(rows)
        print(f"| {run.name} | {c['runs']} | {c['pearson']:+.2f} | {c['spearman']:+.2f} ({c['spearman_p']:.2f}) |")
    c = correlations(every)
    print(f"| all of them (pool only runs of one reward signal) | {c['runs']} | {c['pearson']:+.2f} | {c['spearman']:+.2f} ({c['spearman_p']:.2f}) |")


if __name__ == "__main__":
    main()

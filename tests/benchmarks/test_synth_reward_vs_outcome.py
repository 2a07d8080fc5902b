"""benchmarks/synth/reward_vs_outcome.py pairs each agent run's mean reward with its final gain over none."""

from __future__ import annotations

import pytest

from benchmarks.synth import reward_vs_outcome as mod


def test_pairs_use_the_same_seeds_none_and_correlations_see_the_order():
    results = {
        "final": [{"arm": "none", "seed": 0, "top1": 0.70}, {"arm": "none", "seed": 1, "top1": 0.80},
                  {"arm": "random", "seed": 0, "top1": 0.71}, {"arm": "random", "seed": 1, "top1": 0.83},
                  {"arm": "bandit", "seed": 0, "top1": 0.72}],
        "agents": [{"agent": "random", "seed": 0, "history": [{"reward": 0.0}, {"reward": 0.2}]},
                   {"agent": "random", "seed": 1, "history": [{"reward": 0.3}]},
                   {"agent": "bandit", "seed": 0, "history": [{"reward": 0.2}]}],
    }
    rows = mod.pairs(results)
    assert [(a, s) for a, s, _, _ in rows] == [("random", 0), ("random", 1), ("bandit", 0)]
    assert rows[0][2] == pytest.approx(0.1) and rows[0][3] == pytest.approx(1.0)  # points over its own seed's none
    assert rows[1][3] == pytest.approx(3.0) and rows[2][3] == pytest.approx(2.0)
    c = mod.correlations(rows)
    assert c["runs"] == 3 and c["spearman"] == pytest.approx(1.0) and c["pearson"] > 0.9

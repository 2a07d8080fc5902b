#!/usr/bin/env bash
# Run the system benchmarks (python -m benchmarks.NAME from the repository root); Markdown tables go
# to stdout, JSON results to benchmarks/results/.
# About 20 minutes on 2 CPU cores. Set PYTHON to choose the interpreter (default: python).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
OUT=benchmarks/results
mkdir -p "$OUT"

echo "== store size (template teacher) =="
"$PY" -m benchmarks.store_size --json "$OUT/store_size.json"
echo
echo "== store size (random conv teacher) =="
"$PY" -m benchmarks.store_size --teacher conv --json "$OUT/store_size_conv.json"
echo
echo "== reinforcement throughput =="
"$PY" -m benchmarks.reinforce_throughput --json "$OUT/reinforce_throughput.json"
echo
echo "== random read =="
"$PY" -m benchmarks.random_read --json "$OUT/random_read.json"
echo
echo "== data sources: wds / hf reads, streamed vs random epoch =="
"$PY" -m benchmarks.sources --json "$OUT/sources.json"
echo
echo "== training cost: DR / ERM, loading, KD / DR =="
"$PY" -m benchmarks.train_cost --json "$OUT/train_cost.json"
echo
echo "== Ray: 1 vs 2 workers =="
"$PY" -m benchmarks.ray_scaling --json "$OUT/ray_scaling.json"

#!/usr/bin/env bash
# Run every benchmark; Markdown tables go to stdout, JSON results to benchmarks/results/.
# About 20 minutes on 2 CPU cores. Set PYTHON to choose the interpreter (default: python).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
OUT=benchmarks/results
mkdir -p "$OUT"

echo "== store size (template teacher) =="
"$PY" benchmarks/store_size.py --json "$OUT/store_size.json"
echo
echo "== store size (random conv teacher) =="
"$PY" benchmarks/store_size.py --teacher conv --json "$OUT/store_size_conv.json"
echo
echo "== reinforcement throughput =="
"$PY" benchmarks/reinforce_throughput.py --json "$OUT/reinforce_throughput.json"
echo
echo "== random read =="
"$PY" benchmarks/random_read.py --json "$OUT/random_read.json"
echo
echo "== training cost: DR / ERM, loading, KD / DR =="
"$PY" benchmarks/train_cost.py --json "$OUT/train_cost.json"
echo
echo "== Ray: 1 vs 2 workers =="
"$PY" benchmarks/ray_scaling.py --json "$OUT/ray_scaling.json"

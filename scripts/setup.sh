#!/usr/bin/env bash
# Sets drkit up on a fresh machine: PyTorch + torchvision from PyPI, Debian's Fashion-MNIST files
# when apt is available (optional: tests that need them skip otherwise), then drkit with its test
# extras in editable mode, and the optional Ray and synth extras. Safe to rerun: every step is skipped when
# already done.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# torchvision's compiled ops must load (a CPU-only torch wheel from a local wheel cache may not
# match PyPI's torchvision): install the pair from pip's default index, with the machine's pip config and local find-links switched off.
if ! "$PY" -c "import torch, torchvision; torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)" 2>/dev/null; then
  echo "setup: installing torch==2.13.0 and torchvision==0.28.0 from PyPI (about a minute, ~5 GB)"
  PIP_FIND_LINKS= PIP_CONFIG_FILE=/dev/null "$PY" -m pip install -q \
    "torch==2.13.0" "torchvision==0.28.0"
fi

if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null \
   && [ "$(id -u)" = 0 ]; then
  echo "setup: installing Debian's dataset-fashion-mnist"
  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
    || echo "setup: dataset-fashion-mnist unavailable; Fashion-MNIST tests will be skipped"
fi

# Headless Chromium renders `drkit compare`'s HTML report in a test (skipped when absent).
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "setup: installing Debian's chromium (headless check of the HTML report)"
  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
    || echo "setup: chromium unavailable; the report screenshot test will be skipped"
fi

"$PY" -m pip install -q -e ".[test]"
# Ray (the distributed engine, `drkit[ray]`) is optional: its tests skip when it is missing, so a
# failed install (no wheel for this platform, no network) must not fail the setup.
if ! "$PY" -c "import ray" 2>/dev/null; then
  echo "setup: installing the Ray extra (drkit[ray], for --engine ray and its tests)"
  "$PY" -m pip install -q -e ".[test,ray]" \
    || echo "setup: Ray could not be installed; the Ray engine tests will be skipped"
fi
# The synth extra (`drkit synth`: diffusers, transformers, gymnasium, stable-baselines3) is optional too.
if ! "$PY" -c "import diffusers, transformers, gymnasium, stable_baselines3" 2>/dev/null; then
  echo "setup: installing the synth extra (drkit[synth], for drkit synth and its tests)"
  "$PY" -m pip install -q -e ".[test,synth]" \
    || echo "setup: the synth extra could not be installed; its tests will be skipped"
fi
# The sources extra (`wds:` and `hf:` data, `drkit export --push`) and the Lightning/Accelerate
# examples are optional as well: their tests skip when the libraries are missing.
if ! "$PY" -c "import webdataset, datasets, huggingface_hub, lightning, accelerate" 2>/dev/null; then
  echo "setup: installing the sources and examples extras (webdataset, datasets, huggingface_hub, lightning, accelerate)"
  "$PY" -m pip install -q -e ".[test,sources,examples]" \
    || echo "setup: the sources/examples extras could not be installed; their tests will be skipped"
fi
echo "setup: done ($("$PY" -c 'import drkit, torch; print("drkit", drkit.__version__, "torch", torch.__version__)'))"

"""What every benchmark script shares: the data it measures on and how it records a result.

Scripts run as ``python benchmarks/NAME.py``, so this folder is on ``sys.path`` and they import
``_common`` directly.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import drkit
from drkit.data import ImageDataset


def load_data(samples: int) -> ImageDataset:
    """The first ``samples`` Fashion-MNIST training images, or scikit-learn's digits if not installed."""
    try:
        ds = drkit.load_dataset("fashion-mnist")
    except drkit.DataError:
        print("Fashion-MNIST not found (apt-get install dataset-fashion-mnist): using sklearn digits",
              file=sys.stderr)
        ds = drkit.load_dataset("digits")
    n = min(samples, len(ds))
    return ds.subset(np.arange(n), name=f"{ds.name}[:{n}]")  # type: ignore[attr-defined]


def environment(**extra: Any) -> dict[str, Any]:
    """Versions, cores and load of this machine, so that a reader can judge a number."""
    return {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__,
            "drkit": drkit.__version__, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "loadavg_1_5_15_at_end": list(os.getloadavg()), **extra}


def record(benchmark: str, settings: dict[str, Any], path: Path | None, **fields: Any) -> dict[str, Any]:
    """The result with its exact command and settings; written as JSON to ``path`` when given."""
    result = {"benchmark": benchmark, "command": "python " + " ".join(sys.argv),
              "settings": {k: str(v) if isinstance(v, Path) else v for k, v in settings.items()}, **fields}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def cached_arm(root: Path, name: str, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``root/arms/<name>.json`` if an earlier call wrote it, else ``make()`` timed (``arm_seconds``)
    and saved there: reruns of a long benchmark skip what is done. Logs ``arm NAME`` only when it
    computes one."""
    path = root / "arms" / f"{name}.json"
    if not path.is_file():
        logging.getLogger("benchmarks").info("arm %s", name)
        t0 = time.perf_counter()
        result = make()
        result["arm_seconds"] = time.perf_counter() - t0
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
    return json.loads(path.read_text())


DISCUSSION = "\n## Discussion"  # a report file keeps what follows this heading when it is rewritten


def write_report(path: Path, body: str) -> None:
    """Write a generated Markdown report to ``path``, keeping the hand-written part of the file it
    replaces (from ``## Discussion`` on): a rerun refreshes the numbers, not the prose."""
    old = path.read_text() if path.is_file() else ""
    path.write_text(body + (old[old.index(DISCUSSION):] if DISCUSSION in old else ""))

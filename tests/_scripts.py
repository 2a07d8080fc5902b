"""Import a benchmark script (not a package module) by its path, for tests of its functions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def load_script(relative: str, name: str) -> ModuleType:
    """``benchmarks/<relative>`` as module ``name`` (registered first: dataclasses look their module up)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / relative)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod

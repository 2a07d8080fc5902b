"""Old import paths of drkit 0.1's flat layout, kept for one release (they warn, then go in 0.3).

Each old module path is registered in ``sys.modules`` as a small alias module: importing it does
not import the new module, and reading a name from it warns once per name with a
``DeprecationWarning`` that says where the name lives now, then forwards to it. Nothing else is
done at import time, and nothing of a store or of user data is involved.
"""

from __future__ import annotations

import importlib
import sys
import types
import warnings
from typing import Any

# old module -> new module; (old module, name) -> new module where a name left its module
MOVED_MODULES: dict[str, str] = {
    "drkit.reinforce": "drkit.reinforcement",  # the module; drkit.reinforce the function is unchanged
    "drkit.train": "drkit.training",  # the module; drkit.train the function is unchanged
    "drkit.ops": "drkit.augment.ops",
    "drkit.policies": "drkit.augment.policies",
    "drkit._rng": "drkit.augment.rng",
    "drkit.store": "drkit.reinforcement.store",
    "drkit.manifest": "drkit.reinforcement.manifest",
    "drkit.targets": "drkit.reinforcement.targets",
    "drkit.teachers": "drkit.reinforcement.teachers",
    "drkit.ray_engine": "drkit.reinforcement.ray_engine",
    "drkit.reinforced": "drkit.training.reinforced_dataset",
    "drkit.losses": "drkit.training.losses",
    "drkit.runs": "drkit.training.runs",
    "drkit.corruptions": "drkit.evaluate.corruptions",
    "drkit.robustness": "drkit.evaluate.robustness",
    "drkit.ood": "drkit.evaluate.ood",
    "drkit.certify": "drkit.evaluate.certify",
    "drkit.report": "drkit.evaluate.report",
    "drkit.plots": "drkit.evaluate.plots",
    "drkit.audit": "drkit.evaluate.audit",
    "drkit._reporting": "drkit.evaluate.formatting",
    "drkit.cli_eval": "drkit.cli.eval_commands",
    "drkit.cli_synth": "drkit.cli.synth_commands",
}
MOVED_NAMES: dict[tuple[str, str], str] = {
    ("drkit.teachers", "best_device"): "drkit.inference",
    ("drkit.teachers", "probabilities"): "drkit.inference",
    ("drkit.robustness", "image_batches"): "drkit.inference",
    ("drkit.robustness", "predict_batches"): "drkit.inference",
    ("drkit.runs", "stratified_subset"): "drkit.data",
    ("drkit.train", "predict_probs"): "drkit.inference",
    ("drkit.train", "best_device"): "drkit.inference",
    ("drkit.reinforce", "best_device"): "drkit.inference",
    ("drkit.evaluate", "best_device"): "drkit.inference",
    ("drkit.evaluate", "image_batches"): "drkit.inference",
    ("drkit.evaluate", "predict_batches"): "drkit.inference",
    ("drkit.synth.generators", "load_generator"): "drkit.synth.registry",
    **{("drkit.store", name): "drkit.reinforcement.writer"
       for name in ("LOCK_FILE", "WriterLock", "ShardWriter", "write_manifest")},
}


def _warn(old: str, name: str, new: str) -> None:
    warnings.warn(f"{old}.{name} moved to {new}.{name}: import it from there ({old} is the layout of drkit 0.1 "
                  "and goes in drkit 0.3)", DeprecationWarning, stacklevel=4)  # _warn, moved_name, __getattr__, the caller


class _MovedModule(types.ModuleType):
    """``sys.modules[old]``: names are read from the new module, with a warning."""

    def __init__(self, old: str, new: str) -> None:
        super().__init__(old, f"drkit 0.1's {old}, now {new} (deprecated alias)")
        self.__dict__["_drkit_new"] = new

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return moved_name(self.__name__, name, self.__dict__["_drkit_new"])


def moved_name(module: str, name: str, default: str | None = None) -> Any:
    """``name`` of drkit 0.1's ``module``, read where it lives now (``MOVED_NAMES``, else ``default``)
    with a warning; AttributeError when it never moved. Used by the alias modules and by a stage
    package's ``__getattr__``."""
    new = MOVED_NAMES.get((module, name), default)
    if new is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    _warn(module, name, new)
    return getattr(importlib.import_module(new), name)


def install() -> None:
    """Register the alias modules (called once by ``drkit/__init__``)."""
    for old, new in MOVED_MODULES.items():
        sys.modules.setdefault(old, _MovedModule(old, new))

"""drkit: improve an image-classification dataset once so that every model trained on it is better.

Dataset reinforcement (Faghri et al., "Reinforce Data, Multiply Impact", ICCV 2023): a teacher
ensemble is run once over many parametrized augmentations of every sample; the parameters and the
teacher's sparsified output are stored, and training replays them with soft targets.
"""

import importlib
import sys
from typing import TYPE_CHECKING

from . import _compat  # noqa: E402
from ._version import __version__

_compat.install()  # drkit 0.1's module paths (drkit.runs, drkit.store, ...) as warning aliases, for one release

from .errors import (  # noqa: E402  (cheap, and what every caller catches)
    ConfigError,
    DataError,
    DrkitError,
    StoreCorruptError,
    StoreError,
    StoreMismatchError,
    TeacherError,
)

if TYPE_CHECKING:  # what type checkers and IDEs see: the same names, imported eagerly
    from .augment.policies import POLICIES, Policy, PolicyConfig
    from .data import (
        HuggingFaceDataset,
        ImageDataset,
        WebDatasetSource,
        dataset_fingerprint,
        load_dataset,
    )
    from .evaluate.audit import audit_store
    from .evaluate.certify import CertifyConfig
    from .evaluate.corruptions import CORRUPTIONS, SHIFTS, corrupt
    from .evaluate.evaluation import EvalConfig, Evaluation, evaluate_model, evaluate_run
    from .evaluate.report import compare
    from .metrics import classification_metrics, evaluation_metrics
    from .models import create_model
    from .reinforcement.config import ReinforceConfig
    from .reinforcement.engine import reinforce
    from .reinforcement.export import export_store, push_folder
    from .reinforcement.matching import SampleMatch, SampleMismatchError
    from .reinforcement.ray_engine import RayOptions
    from .reinforcement.store import Store
    from .reinforcement.targets import densify, topk_sparsify
    from .reinforcement.teachers import TeacherEnsemble, load_teacher
    from .training.fresh import FreshAugmented
    from .training.loop import TrainConfig, Trainer, train
    from .training.losses import (
        kd_kl_loss,
        soft_target_cross_entropy,
        sparse_soft_target_cross_entropy,
    )
    from .training.reinforced_dataset import ReinforcedDataset
    from .training.runs import RunConfig, TrainResult, train_run
    from .training.streamed import StreamedReinforcedDataset

_EXPORTS: dict[str, str] = {  # public name -> the module it lives in, imported on first use
    "POLICIES": ".augment.policies",
    "Policy": ".augment.policies",
    "PolicyConfig": ".augment.policies",
    "HuggingFaceDataset": ".data",
    "ImageDataset": ".data",
    "WebDatasetSource": ".data",
    "dataset_fingerprint": ".data",
    "load_dataset": ".data",
    "audit_store": ".evaluate.audit",
    "CertifyConfig": ".evaluate.certify",
    "CORRUPTIONS": ".evaluate.corruptions",
    "SHIFTS": ".evaluate.corruptions",
    "corrupt": ".evaluate.corruptions",
    "EvalConfig": ".evaluate.evaluation",
    "Evaluation": ".evaluate.evaluation",
    "evaluate_model": ".evaluate.evaluation",
    "evaluate_run": ".evaluate.evaluation",
    "compare": ".evaluate.report",
    "classification_metrics": ".metrics",
    "evaluation_metrics": ".metrics",
    "create_model": ".models",
    "ReinforceConfig": ".reinforcement.config",
    "reinforce": ".reinforcement.engine",
    "export_store": ".reinforcement.export",
    "push_folder": ".reinforcement.export",
    "SampleMatch": ".reinforcement.matching",
    "SampleMismatchError": ".reinforcement.matching",
    "RayOptions": ".reinforcement.ray_engine",
    "Store": ".reinforcement.store",
    "densify": ".reinforcement.targets",
    "topk_sparsify": ".reinforcement.targets",
    "TeacherEnsemble": ".reinforcement.teachers",
    "load_teacher": ".reinforcement.teachers",
    "FreshAugmented": ".training.fresh",
    "TrainConfig": ".training.loop",
    "Trainer": ".training.loop",
    "train": ".training.loop",
    "kd_kl_loss": ".training.losses",
    "soft_target_cross_entropy": ".training.losses",
    "sparse_soft_target_cross_entropy": ".training.losses",
    "ReinforcedDataset": ".training.reinforced_dataset",
    "RunConfig": ".training.runs",
    "TrainResult": ".training.runs",
    "train_run": ".training.runs",
    "StreamedReinforcedDataset": ".training.streamed",
}

__all__ = [
    "__version__",
    "ImageDataset",
    "WebDatasetSource",
    "HuggingFaceDataset",
    "StreamedReinforcedDataset",
    "SampleMatch",
    "SampleMismatchError",
    "export_store",
    "push_folder",
    "load_dataset",
    "dataset_fingerprint",
    "DrkitError",
    "ConfigError",
    "DataError",
    "TeacherError",
    "StoreError",
    "StoreMismatchError",
    "StoreCorruptError",
    "soft_target_cross_entropy",
    "sparse_soft_target_cross_entropy",
    "kd_kl_loss",
    "classification_metrics",
    "evaluation_metrics",
    "evaluate_run",
    "EvalConfig",
    "Evaluation",
    "evaluate_model",
    "corrupt",
    "CORRUPTIONS",
    "SHIFTS",
    "CertifyConfig",
    "compare",
    "audit_store",
    "create_model",
    "POLICIES",
    "Policy",
    "PolicyConfig",
    "ReinforceConfig",
    "reinforce",
    "RayOptions",
    "ReinforcedDataset",
    "train_run",
    "RunConfig",
    "TrainResult",
    "Store",
    "densify",
    "topk_sparsify",
    "TeacherEnsemble",
    "load_teacher",
    "FreshAugmented",
    "TrainConfig",
    "Trainer",
    "train",
]


_STAGES = ("augment", "data", "evaluate", "reinforcement", "synth", "training", "cli")


def __getattr__(name: str) -> object:
    """The public API, imported on first use: ``import drkit`` costs little (a Ray worker or a
    DataLoader worker that needs the store does not import matplotlib, scipy and every stage: a
    one-worker Ray start went from 6.5-7.5 s to 5.0-5.3 s, ``benchmarks/ray_scaling.py``). Also ``drkit.evaluate``
    and the other stage packages, and drkit 0.1's flat modules (``drkit.store``, ...)."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value  # once: later reads do not come here
        return value
    if name in _STAGES:
        return importlib.import_module(f".{name}", __name__)
    old = f"{__name__}.{name}"
    if old in _compat.MOVED_MODULES:
        return sys.modules[old]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

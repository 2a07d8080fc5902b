"""drkit: improve an image-classification dataset once so that every model trained on it is better.

Dataset reinforcement (Faghri et al., "Reinforce Data, Multiply Impact", ICCV 2023): a teacher
ensemble is run once over many parametrized augmentations of every sample; the parameters and the
teacher's sparsified output are stored, and training replays them with soft targets.
"""

import sys

from . import _compat  # noqa: E402
from ._version import __version__

_compat.install()  # drkit 0.1's module paths (drkit.runs, drkit.store, ...) as warning aliases, for one release

from .augment.policies import POLICIES, Policy, PolicyConfig  # noqa: E402
from .data import (  # noqa: E402
    HuggingFaceDataset,
    ImageDataset,
    WebDatasetSource,
    dataset_fingerprint,
    load_dataset,
)
from .errors import (  # noqa: E402
    ConfigError,
    DataError,
    DrkitError,
    StoreCorruptError,
    StoreError,
    StoreMismatchError,
    TeacherError,
)
from .evaluate.audit import audit_store  # noqa: E402
from .evaluate.certify import CertifyConfig  # noqa: E402
from .evaluate.corruptions import CORRUPTIONS, SHIFTS, corrupt  # noqa: E402
from .evaluate.evaluation import EvalConfig, Evaluation, evaluate_model, evaluate_run  # noqa: E402
from .evaluate.report import compare  # noqa: E402
from .metrics import classification_metrics, evaluation_metrics  # noqa: E402
from .models import create_model  # noqa: E402
from .reinforcement.config import ReinforceConfig  # noqa: E402
from .reinforcement.engine import reinforce  # noqa: E402
from .reinforcement.export import export_store, push_folder  # noqa: E402
from .reinforcement.matching import SampleMatch, SampleMismatchError  # noqa: E402
from .reinforcement.ray_engine import RayOptions  # noqa: E402  (Ray itself is imported only when used)
from .reinforcement.store import Store  # noqa: E402
from .reinforcement.targets import densify, topk_sparsify  # noqa: E402
from .reinforcement.teachers import TeacherEnsemble, load_teacher  # noqa: E402
from .training.fresh import FreshAugmented  # noqa: E402
from .training.loop import TrainConfig, Trainer, train  # noqa: E402
from .training.losses import kd_kl_loss, soft_target_cross_entropy, sparse_soft_target_cross_entropy  # noqa: E402
from .training.reinforced_dataset import ReinforcedDataset  # noqa: E402
from .training.runs import RunConfig, TrainResult, train_run  # noqa: E402
from .training.streamed import StreamedReinforcedDataset  # noqa: E402

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


def __getattr__(name: str) -> object:  # drkit.store, drkit.runs, ... (drkit 0.1's flat modules)
    old = f"{__name__}.{name}"
    if old in _compat.MOVED_MODULES:
        return sys.modules[old]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

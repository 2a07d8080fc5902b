"""drkit: improve an image-classification dataset once so that every model trained on it is better.

Dataset reinforcement (Faghri et al., "Reinforce Data, Multiply Impact", ICCV 2023): a teacher
ensemble is run once over many parametrized augmentations of every sample; the parameters and the
teacher's sparsified output are stored, and training replays them with soft targets.
"""

__version__ = "0.1.0"

from .audit import audit_store  # noqa: E402
from .certify import CertifyConfig  # noqa: E402
from .corruptions import CORRUPTIONS, SHIFTS, corrupt  # noqa: E402
from .data import ImageDataset, dataset_fingerprint, load_dataset  # noqa: E402
from .errors import (  # noqa: E402
    ConfigError,
    DataError,
    DrkitError,
    StoreCorruptError,
    StoreError,
    StoreMismatchError,
    TeacherError,
)
from .evaluate import evaluate_model, evaluate_run  # noqa: E402
from .losses import kd_kl_loss, soft_target_cross_entropy, sparse_soft_target_cross_entropy  # noqa: E402
from .metrics import classification_metrics, evaluation_metrics  # noqa: E402
from .models import create_model  # noqa: E402
from .policies import POLICIES, Policy, PolicyConfig  # noqa: E402
from .ray_engine import RayOptions  # noqa: E402  (Ray itself is imported only when used)
from .reinforce import ReinforceConfig, reinforce  # noqa: E402
from .reinforced import ReinforcedDataset  # noqa: E402
from .report import compare  # noqa: E402
from .runs import train_run  # noqa: E402
from .store import Store  # noqa: E402
from .targets import densify, topk_sparsify  # noqa: E402
from .teachers import TeacherEnsemble, load_teacher  # noqa: E402
from .train import FreshAugmented, TrainConfig, Trainer, train  # noqa: E402

__all__ = [
    "__version__",
    "ImageDataset",
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

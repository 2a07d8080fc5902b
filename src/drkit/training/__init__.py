"""Stage 3, train: students on a reinforced store (DR), on fresh augmentations (ERM) or with an
online teacher (KD), at equal epochs and policy.

- :mod:`~drkit.training.reinforced_dataset`: :class:`ReinforcedDataset`, a store replayed onto its dataset;
- :mod:`~drkit.training.fresh`: :class:`FreshAugmented` (ERM/KD data) and AugMix;
- :mod:`~drkit.training.losses`: soft-target losses (dense, sparse top-k, KD);
- :mod:`~drkit.training.loop`: :class:`TrainConfig`, :class:`Trainer`, :func:`train`;
- :mod:`~drkit.training.runs`: :func:`train_run`, a resumable run directory (``drkit train``).

"""

from .fresh import FreshAugmented, augmix
from .loop import TrainConfig, Trainer, train
from .losses import kd_kl_loss, soft_target_cross_entropy, sparse_soft_target_cross_entropy
from .reinforced_dataset import ReinforcedDataset
from .runs import MODES, RunConfig, TrainResult, load_run_model, train_run

__all__ = ["TrainConfig", "Trainer", "train", "FreshAugmented", "augmix", "ReinforcedDataset", "train_run", "RunConfig", "TrainResult",
           "load_run_model", "MODES", "soft_target_cross_entropy", "sparse_soft_target_cross_entropy",
           "kd_kl_loss"]


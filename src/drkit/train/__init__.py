"""Stage 3, train: students on a reinforced store (DR), on fresh augmentations (ERM) or with an
online teacher (KD), at equal epochs and policy.

- :mod:`~drkit.train.reinforced_dataset`: :class:`ReinforcedDataset`, a store replayed onto its dataset;
- :mod:`~drkit.train.fresh`: :class:`FreshAugmented` (ERM/KD data) and AugMix;
- :mod:`~drkit.train.losses`: soft-target losses (dense, sparse top-k, KD);
- :mod:`~drkit.train.loop`: :class:`TrainConfig`, :class:`Trainer`, :func:`train`;
- :mod:`~drkit.train.runs`: :func:`train_run`, a resumable run directory (``drkit train``).

``drkit.train`` is also the public function :func:`drkit.train` on the top-level package.
"""

from typing import Any

from .._compat import moved_name
from .fresh import FreshAugmented, augmix
from .loop import TrainConfig, Trainer, train
from .losses import kd_kl_loss, soft_target_cross_entropy, sparse_soft_target_cross_entropy
from .reinforced_dataset import ReinforcedDataset
from .runs import MODES, RunConfig, TrainResult, load_run_model, train_run

__all__ = ["TrainConfig", "Trainer", "train", "FreshAugmented", "augmix", "ReinforcedDataset", "train_run", "RunConfig", "TrainResult",
           "load_run_model", "MODES", "soft_target_cross_entropy", "sparse_soft_target_cross_entropy",
           "kd_kl_loss"]


def __getattr__(name: str) -> Any:  # names of drkit 0.1's train module that live elsewhere now
    return moved_name(__name__, name)

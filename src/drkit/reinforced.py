"""``ReinforcedDataset``: train on a reinforced dataset with a two-line change to your code.

Wrap your dataset and its store; each access replays one of the stored augmentations of that
sample — chosen as a pure function of (seed, epoch, index), call :meth:`set_epoch` each epoch —
fetches the mixing partner when the policy mixes, and returns::

    (view, target, label)

``view`` is the exact tensor the teacher saw (float32 ``(C, H, W)`` in [0, 1]); ``target`` the
teacher's distribution densified to ``(num_classes,)`` (top-k plus the residual mass spread over the
other classes), or with ``sparse=True`` a ``(values (k,), class ids (k,))`` pair for many classes
(see :func:`drkit.losses.sparse_soft_target_cross_entropy`); ``label`` the original label,
unchanged. With ``views=V`` one access returns V different stored augmentations of the same sample
stacked (``(V, C, H, W)``, ``(V, classes)``), amortizing the decode (FKD's trick).

Map-style, stateless apart from the epoch: works with ``num_workers > 0``, ``persistent_workers=True``
and ``DistributedSampler``. The epoch lives in a one-element shared-memory tensor, so :meth:`set_epoch`
in the main process reaches the workers' copies of the dataset — persistent workers keep their copy
for the whole run, and a plain attribute would replay epoch 0's augmentations forever. As with
``DistributedSampler``, call it before iterating over the loader for that epoch.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ._rng import STREAM_REPLAY, rng_at
from .data import ImageDataset, load_dataset
from .errors import ConfigError, StoreMismatchError
from .store import Store
from .targets import densify

__all__ = ["ReinforcedDataset"]


class ReinforcedDataset(Dataset):
    """Replays a :class:`~drkit.Store` onto the dataset it was made from.

    Args:
        base: the source dataset (name, :class:`ImageDataset` or map-style dataset).
        store: a store directory or an open :class:`Store`; checked against ``base``.
        seed: seed of the choice of stored augmentation per (epoch, index).
        views: stored augmentations returned per access (1: plain items).
        sparse: return ``(values, ids)`` top-k targets instead of dense distributions.
        policy: if given, the policy name the caller expects; a store of another policy is an error.

    Example:
        >>> train_set = ReinforcedDataset("digits", "runs/demo/digits+")  # doctest: +SKIP
        >>> view, target, label = train_set[0]  # doctest: +SKIP
    """

    def __init__(self, base: str | ImageDataset | Dataset, store: str | os.PathLike[str] | Store, *,
                 seed: int = 0, views: int = 1, sparse: bool = False, policy: str | None = None) -> None:
        self.base = load_dataset(base)
        self.store = store if isinstance(store, Store) else Store.open(store)
        self.store.check_dataset(self.base)
        if policy is not None and policy != self.store.policy_config.name:
            raise StoreMismatchError(
                f"{self.store.root} was reinforced with policy {self.store.policy_config.name!r}, not {policy!r}; "
                "use a store made with the policy you want, or drop the policy argument"
            )
        if not 1 <= views <= self.store.num_augs:
            raise ConfigError(f"views must be in 1..{self.store.num_augs} (the stored augmentations), got {views}")
        self.policy = self.store.policy()
        # shared with DataLoader workers (fork: inherited mapping; spawn: torch shares the storage)
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self.seed, self.views, self.sparse = seed, views, sparse
        self.num_classes = self.store.num_classes

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    @epoch.setter
    def epoch(self, value: int) -> None:
        if int(value) < 0:
            raise ConfigError(f"epoch must be non-negative, got {value}")
        self._epoch[0] = int(value)

    def set_epoch(self, epoch: int) -> None:
        """Choose a new stored augmentation per sample (call once per epoch, before iterating, as with
        DistributedSampler); seen by every DataLoader worker, persistent or not."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.base)

    def choose(self, index: int) -> np.ndarray:
        """Indices of the stored augmentations replayed for ``index`` this epoch (``views`` distinct)."""
        rng = rng_at(self.seed, STREAM_REPLAY, index, self.epoch)
        if self.views == 1:
            return np.array([rng.integers(0, self.store.num_augs)])
        return rng.choice(self.store.num_augs, size=self.views, replace=False)

    def replay(self, index: int, aug: int, image: torch.Tensor | None = None) -> torch.Tensor:
        """The exact view the teacher saw for (index, aug)."""
        rec = self.store.record(index, aug)
        image = self.base.image(index) if image is None else image
        if not self.policy.config.uses_mixing:
            return self.policy.apply(image, rec)
        p, pa = int(rec["partner"]), int(rec["partner_aug"])
        return self.policy.apply(image, rec, self.base.image(p), self.store.record(p, pa))

    def target(self, index: int, aug: int) -> Any:
        rec = self.store.record(index, aug)
        values = np.asarray(rec["probs"], dtype=np.float32)
        ids = None if self.store.dense else np.asarray(rec["classes"], dtype=np.int64)
        if self.sparse:
            ids = np.arange(len(values)) if ids is None else ids
            return torch.from_numpy(values), torch.from_numpy(ids)
        return densify(values, ids, self.num_classes)

    def __getitem__(self, index: int) -> tuple[Any, Any, int]:
        image = self.base.image(index)
        label = int(self.base.labels[index])
        augs = self.choose(index)
        if self.views == 1:
            a = int(augs[0])
            return self.replay(index, a, image), self.target(index, a), label
        views = torch.stack([self.replay(index, int(a), image) for a in augs])
        targets = [self.target(index, int(a)) for a in augs]
        if self.sparse:
            return views, (torch.stack([t[0] for t in targets]), torch.stack([t[1] for t in targets])), label
        return views, torch.stack(targets), label

"""``ReinforcedDataset``: train on a reinforced dataset with a 4-line change to a plain training loop.

Wrap your dataset and its store; each access replays one of the stored augmentations of that
sample — chosen as a pure function of (seed, epoch, index), call :meth:`set_epoch` each epoch —
fetches the mixing partner when the policy mixes, and returns::

    (view, target, label)

``view`` is the exact tensor the teacher saw (float32 ``(C, H, W)`` in [0, 1]); ``target`` the
teacher's distribution densified to ``(num_classes,)`` (top-k plus the residual mass spread over the
other classes), or with ``sparse=True`` a ``(values (k,), class ids (k,))`` pair for many classes
(see :func:`drkit.training.losses.sparse_soft_target_cross_entropy`); ``label`` the original label,
unchanged. With ``views=V`` one access returns V different stored augmentations of the same sample
stacked (``(V, C, H, W)``, ``(V, classes)``), amortizing the decode (FKD's trick).

``p < 1`` (ml-dr's option, the paper's second guideline for small students: balance the
reinforcement's difficulty with the model's capacity) returns, with probability ``1 - p`` per
(epoch, index), the original image — fitted to the store's view size, not augmented — with its hard
label as a one-hot target (sparse: the label first with value 1); the choice is a pure function of
(seed, epoch, index), like the replayed augmentation.

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

from ..augment.ops import to_float
from ..augment.rng import STREAM_ORIGINAL, STREAM_REPLAY, rng_at
from ..data import ImageDataset, center_fit, load_dataset
from ..errors import ConfigError, StoreMismatchError
from ..reinforcement.store import Store
from ..reinforcement.targets import densify

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
        p: probability of a reinforced item per (epoch, index); otherwise the original image with
            its hard label (default 1: always reinforced).

    Example:
        >>> train_set = ReinforcedDataset("digits", "runs/demo/digits+")  # doctest: +SKIP
        >>> view, target, label = train_set[0]  # doctest: +SKIP
    """

    def __init__(self, base: str | ImageDataset | Dataset, store: str | os.PathLike[str] | Store, *,
                 seed: int = 0, views: int = 1, sparse: bool = False, policy: str | None = None,
                 p: float = 1.0) -> None:
        if not 0 <= p <= 1:
            raise ConfigError(f"p (the probability of a reinforced item) must be in [0, 1], got {p}")
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
        self.seed, self.views, self.sparse, self.p = seed, views, sparse, float(p)
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
        image = self.base.image(index) if image is None else image
        return self.policy.replay(image, self.store.record(index, aug), self.base.image,
                                  lambda p, a, _: self.store.record(p, a))

    def target(self, index: int, aug: int) -> Any:
        rec = self.store.record(index, aug)
        values = np.asarray(rec["probs"], dtype=np.float32)
        ids = None if self.store.dense else np.asarray(rec["classes"], dtype=np.int64)
        if self.sparse:
            ids = np.arange(len(values)) if ids is None else ids
            return torch.from_numpy(values), torch.from_numpy(ids)
        return densify(values, ids, self.num_classes)

    def original(self, index: int) -> bool:
        """Whether ``index`` trains on its original image and hard label this epoch (``p < 1``)."""
        return self.p < 1 and float(rng_at(self.seed, STREAM_ORIGINAL, index, self.epoch).random()) >= self.p

    def _hard(self, image: torch.Tensor, label: int) -> tuple[torch.Tensor, Any]:
        view = to_float(center_fit(image, tuple(self.policy.size)))
        k = self.store.topk
        if self.sparse:
            ids = torch.tensor([label] + [c for c in range(self.num_classes) if c != label][: k - 1])
            values = torch.zeros(k)
            values[0] = 1.0
            return view, (values, ids)
        target = torch.zeros(self.num_classes)
        target[label] = 1.0
        return view, target

    def __getitem__(self, index: int) -> tuple[Any, Any, int]:
        image = self.base.image(index)
        label = int(self.base.labels[index])
        if self.original(index):
            view, target = self._hard(image, label)
            if self.views > 1:  # the same original, V times, shaped as V stored views would be
                view = view.expand(self.views, *view.shape).clone()
                target = (tuple(t.expand(self.views, -1).clone() for t in target) if self.sparse
                          else target.expand(self.views, -1).clone())
            return view, target, label
        augs = self.choose(index)
        if self.views == 1:
            a = int(augs[0])
            return self.replay(index, a, image), self.target(index, a), label
        views = torch.stack([self.replay(index, int(a), image) for a in augs])
        targets = [self.target(index, int(a)) for a in augs]
        if self.sparse:
            return views, (torch.stack([t[0] for t in targets]), torch.stack([t[1] for t in targets])), label
        return views, torch.stack(targets), label

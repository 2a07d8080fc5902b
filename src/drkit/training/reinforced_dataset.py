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

Another copy of the data (issue 23): when ``base`` is not the dataset the store was made from
sample for sample (its fingerprint differs) and the store has sample keys (schema 3), each sample
is matched to its store row by key and content hash (:mod:`drkit.reinforcement.matching`); the
same sample then replays the same stored augmentations in either copy, byte for byte, because
every choice is a function of the store row, not of the position in ``base``. Samples missing on
either side or changed are an error naming them, unless ``only_matching=True``: then the dataset
holds the matched samples only, in ``base``'s order (the report is logged). A mixing record whose
partner sample is missing from ``base`` cannot be replayed; such augmentations are never chosen,
and a sample left with fewer than ``views`` usable ones is left out (logged).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..augment.ops import to_float
from ..augment.rng import replayed_augmentations, replays_original
from ..data import ImageDataset, center_fit, load_dataset
from ..data.workers import InheritedObjects
from ..errors import ConfigError, StoreMismatchError
from ..reinforcement.matching import SampleMatch
from ..reinforcement.store import Store
from ..reinforcement.targets import hard_target, record_target, stack_targets

__all__ = ["ReinforcedDataset"]

log = logging.getLogger(__name__)


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
        match: ``"auto"``: by position when ``base``'s fingerprint matches the store's, else by
            sample key; ``"position"``: the fingerprint must match; ``"key"``: always by key and
            content hash (decodes every image once).
        only_matching: when matched by key, train on the samples that match and leave out the
            missing or changed ones (logged), instead of raising
            :class:`~drkit.reinforcement.matching.SampleMismatchError`.

    Example:
        >>> train_set = ReinforcedDataset("digits", "runs/demo/digits+")  # doctest: +SKIP
        >>> view, target, label = train_set[0]  # doctest: +SKIP
    """

    def __init__(self, base: str | ImageDataset | Dataset, store: str | os.PathLike[str] | Store, *,
                 seed: int = 0, views: int = 1, sparse: bool = False, policy: str | None = None,
                 p: float = 1.0, match: str = "auto", only_matching: bool = False) -> None:
        if not 0 <= p <= 1:
            raise ConfigError(f"p (the probability of a reinforced item) must be in [0, 1], got {p}")
        self.base = load_dataset(base)
        self.store = store if isinstance(store, Store) else Store.open(store)
        if policy is not None and policy != self.store.policy_config.name:
            raise StoreMismatchError(
                f"{self.store.root} was reinforced with policy {self.store.policy_config.name!r}, not {policy!r}; "
                "use a store made with the policy you want, or drop the policy argument"
            )
        if not 1 <= views <= self.store.num_augs:
            raise ConfigError(f"views must be in 1..{self.store.num_augs} (the stored augmentations), got {views}")
        # after the cheap checks: matching another copy by key decodes every image once
        self.match: SampleMatch = self.store.match_dataset(self.base, by=match)
        self.match.require(only_matching=only_matching)
        self.policy = self.store.policy()
        # shared with DataLoader workers (fork: inherited mapping; spawn: torch shares the storage)
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._inherited = InheritedObjects()  # a forked worker freezes what it inherited (drkit.data.workers)
        self.seed, self.views, self.sparse, self.p = seed, views, sparse, float(p)
        self.num_classes = self.store.num_classes
        # item t: sample base_index[t] of base replays store row rows[t] (the identity by position)
        self._base_index, self._rows = self.match.base_index, self.match.rows
        self._allowed: np.ndarray | None = None  # (items, num_augs): augmentations that can be replayed
        if (self.policy.config.uses_mixing and self.match.row_to_base is not None
                and (self.match.row_to_base < 0).any()):
            self._drop_missing_partners()

    def _drop_missing_partners(self) -> None:
        """Only-matching with mixing: an augmentation whose partner row the data lacks is never chosen;
        a sample left with fewer than ``views`` is left out."""
        row_to_base = self.match.row_to_base
        assert row_to_base is not None
        usable = row_to_base[self.store.field("partner")[self._rows]] >= 0  # (items, num_augs)
        keep = usable.sum(axis=1) >= self.views
        if not keep.all():
            log.warning("%s: %d matching samples left out: fewer than %d of their stored augmentations mix "
                        "with a partner the data has", self.store.root, int((~keep).sum()), self.views)
        self._base_index, self._rows, usable = self._base_index[keep], self._rows[keep], usable[keep]
        self._allowed = None if usable.all() else usable
        if not len(self._rows):
            raise StoreMismatchError(f"{self.store.root}: no matching sample has a stored augmentation whose mixing "
                                     "partner the data has; use the data the store was made from")

    @property
    def epoch(self) -> int:
        return int(self._epoch.item())  # .item(): ~0.1 us, indexing the tensor ~1 us (read per item)

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
        return len(self._rows)

    def row(self, index: int) -> int:
        """The store row item ``index`` replays (``index`` itself when matched by position)."""
        return int(self._rows[index])

    def base_index(self, index: int) -> int:
        """The sample of ``base`` that item ``index`` is."""
        return int(self._base_index[index])

    def choose(self, index: int) -> np.ndarray:
        """Indices of the stored augmentations replayed for ``index`` this epoch (``views`` distinct);
        a function of (seed, store row, epoch), so a sample replays the same ones in any copy of the data."""
        usable = None if self._allowed is None else np.flatnonzero(self._allowed[index])
        return replayed_augmentations(self.seed, self.row(index), self.epoch, self.store.num_augs, self.views, usable)

    def _image_of_row(self, row: int) -> torch.Tensor:
        b = self.match.base_of_row(row)
        if b < 0:  # only a chosen augmentation is replayed, and those have their partner
            raise StoreMismatchError(f"{self.store.root}: store row {row} (a mixing partner) is not in {self.base.name}")
        return self.base.image(b)

    def replay(self, index: int, aug: int, image: torch.Tensor | None = None) -> torch.Tensor:
        """The exact view the teacher saw for (item ``index``, stored augmentation ``aug``)."""
        row = self.row(index)
        image = self.base.image(self.base_index(index)) if image is None else image
        return self.policy.replay(image, self.store.record(row, aug), self._image_of_row,
                                  lambda p, a, _: self.store.record(p, a))

    def target(self, index: int, aug: int) -> Any:
        rec = self.store.record(self.row(index), aug)
        return record_target(rec, self.num_classes, sparse=self.sparse)

    def original(self, index: int) -> bool:
        """Whether ``index`` trains on its original image and hard label this epoch (``p < 1``)."""
        return replays_original(self.seed, self.row(index), self.epoch, self.p)

    def _hard(self, image: torch.Tensor, label: int) -> tuple[torch.Tensor, Any]:
        view = to_float(center_fit(image, tuple(self.policy.size)))
        return view, hard_target(label, self.num_classes, self.store.topk, sparse=self.sparse)

    def __getitem__(self, index: int) -> tuple[Any, Any, int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"item {index} out of range 0..{len(self) - 1}")
        index = index % len(self)
        self._inherited.check()
        b = self.base_index(index)
        image = self.base.image(b)
        label = int(self.base.labels[b])
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
        return views, stack_targets([self.target(index, int(a)) for a in augs]), label

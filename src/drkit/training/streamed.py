"""``StreamedReinforcedDataset``: train on a reinforced ``wds:`` source by reading its tar shards in
sequence, as webdataset streams them, instead of one random read per sample.

It yields what :class:`~drkit.training.reinforced_dataset.ReinforcedDataset` returns —
``(view, target, label)``, the same stored augmentation per (seed, epoch, sample), so a streamed
run and a map-style run on the same store see the same views — but the order is the stream's:

- **Shards, shuffled per epoch.** The shard order is a pure function of (seed, epoch)
  (:meth:`set_epoch`); samples then pass a small shuffle buffer (``shuffle_buffer`` encoded samples,
  webdataset's ``shuffle`` seeded by (seed, epoch, slot)).
- **Split across DDP ranks and DataLoader workers.** The epoch's sequence of samples (the shards in
  that order) is cut into ``world_size × num_workers`` contiguous runs, one per (rank, worker):
  whole shards, except that a shard may be cut at a sample boundary between two neighbours (the
  second skips the first's part of it). Each sample is yielded once per epoch across all ranks and
  workers, and the runs differ in length by at most one sample — whatever the number of shards and
  their sizes, so "shards not divisible by ranks × workers" costs nothing.
- **Equal lengths for DDP.** Unequal epochs would hang DDP's all-reduce (one rank waits for a step
  the others never take). With ``pad=True`` (the default when ``world_size > 1``) a run one sample
  short repeats its first sample, so every (rank, worker) yields exactly ``ceil(N / slots)`` items,
  every rank the same number of batches, and at most ``slots - 1`` samples are seen twice an epoch
  (as ``DistributedSampler`` pads). All ranks must use the same ``num_workers``.
- **Two readers, the same items.** ``reader="index"`` (the default) reads each run's image members
  in file order at the offsets of the source's index (one ``pread`` each: sequential I/O, no tar
  parsing); ``reader="webdataset"`` streams the tar files through webdataset's own iterator
  (``tarfile_samples``) and checks every sample's ``__key__`` against the index. On a warm local
  disk webdataset's pure-Python tar parsing is the slower of the two (``benchmarks/sources.py``).
- **Records found by key.** A store with sample keys (``Store.has_sample_keys``) is matched to the
  shards by each sample's ``__key__`` (``Store.rows_for``), so the shards may be a re-ordered or
  re-sharded copy of the data the store was made from; a store without keys must come from these
  very shards (checked by the dataset fingerprint) and is matched by position.
- **Mixing partners by random access.** A mixing policy's partner is another sample (a store row);
  its image is read from the shards through the map-style index of
  :class:`~drkit.data.webdataset_source.WebDatasetSource` (one ``pread``), so mixing stores stream too.

``len()`` is this rank's number of samples per epoch without padding (padding adds at most
``num_workers - 1``); DataLoader workers then each batch their own run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import IterableDataset, get_worker_info

from ..augment.ops import to_float
from ..augment.rng import STREAM_SHARD_ORDER, replayed_augmentations, replays_original, rng_at
from ..data import center_fit, load_dataset
from ..data.decode import decode_bytes
from ..data.webdataset_source import (
    IMAGE_EXTENSIONS,
    LABEL_EXTENSIONS,
    WebDatasetSource,
    parse_label,
    pick_member,
)
from ..data.workers import InheritedObjects
from ..errors import ConfigError, DataError, StoreMismatchError
from ..reinforcement.store import Store
from ..reinforcement.targets import hard_target, record_target, stack_targets

__all__ = ["StreamedReinforcedDataset", "slot_runs"]

log = logging.getLogger(__name__)


def slot_runs(lengths: np.ndarray, order: np.ndarray, slot: int, slots: int) -> list[tuple[int, int, int]]:
    """The part of an epoch that (rank, worker) ``slot`` of ``slots`` reads: ``(shard, skip, take)``
    triples over the shards in ``order`` (``lengths[s]`` samples each), a contiguous run of
    ``floor(N * slot / slots) .. floor(N * (slot + 1) / slots)`` of the epoch's sample sequence."""
    total = int(lengths.sum())
    lo, hi = total * slot // slots, total * (slot + 1) // slots
    runs: list[tuple[int, int, int]] = []
    pos = 0
    for s in order:
        n = int(lengths[s])
        a, b = max(lo, pos), min(hi, pos + n)
        if a < b:
            runs.append((int(s), a - pos, b - a))
        pos += n
        if pos >= hi:
            break
    return runs


class StreamedReinforcedDataset(IterableDataset):
    """Streams a ``wds:`` source's shards and replays a store's records onto them (module docstring).

    Args:
        source: a ``wds:PATTERN`` name or a :class:`WebDatasetSource`.
        store: a store directory or an open :class:`Store` made from this data.
        seed: seed of the shard order, the shuffle buffer and the stored augmentation per (epoch, sample).
        views / sparse / policy / p: as for :class:`~drkit.training.reinforced_dataset.ReinforcedDataset`.
        shuffle_buffer: encoded samples held for the in-shard shuffle (1: the stream's order).
        shuffle_shards: shuffle the shard order per epoch (False: the pattern's order every epoch).
        rank / world_size: this process's DDP rank and the number of ranks (default: from
            ``torch.distributed`` when initialised, else 0 and 1).
        pad: pad every (rank, worker) run to the same length (default: when ``world_size > 1``).
        reader: ``index`` (read at the index's offsets) or ``webdataset`` (webdataset's tar iterator).
    """

    def __init__(self, source: str | WebDatasetSource, store: str | os.PathLike[str] | Store, *, seed: int = 0,
                 views: int = 1, sparse: bool = False, policy: str | None = None, p: float = 1.0,
                 shuffle_buffer: int = 256,
                 shuffle_shards: bool = True, rank: int | None = None, world_size: int | None = None,
                 pad: bool | None = None, reader: str = "index") -> None:
        super().__init__()
        src = load_dataset(source) if isinstance(source, str) else source
        if not isinstance(src, WebDatasetSource):
            raise ConfigError(f"streamed training reads webdataset shards (wds:PATTERN); {src.name} is random access: "
                              "train on it with ReinforcedDataset (drop --stream)")
        if not 0 <= p <= 1:
            raise ConfigError(f"p (the probability of a reinforced item) must be in [0, 1], got {p}")
        if reader not in ("index", "webdataset"):
            raise ConfigError(f"reader must be 'index' or 'webdataset', got {reader!r}")
        if shuffle_buffer < 1:
            raise ConfigError(f"shuffle_buffer must be >= 1, got {shuffle_buffer}")
        if world_size is None:
            world_size = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if rank is None:
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"rank must be in 0..world_size-1, got rank {rank} of {world_size}")
        self.source = src
        self.store = store if isinstance(store, Store) else Store.open(store)
        self.rows = self._match_rows()
        # store row -> sample of the source, for mixing partners (-1: not in these shards)
        self.sample_of_row = np.full(self.store.num_samples, -1, dtype=np.int64)
        self.sample_of_row[self.rows] = np.arange(len(self.rows))
        if policy is not None and policy != self.store.policy_config.name:
            raise StoreMismatchError(
                f"{self.store.root} was reinforced with policy {self.store.policy_config.name!r}, not {policy!r}; "
                "use a store made with the policy you want, or drop the policy argument"
            )
        if not 1 <= views <= self.store.num_augs:
            raise ConfigError(f"views must be in 1..{self.store.num_augs} (the stored augmentations), got {views}")
        self.policy = self.store.policy()
        self.num_classes = self.store.num_classes
        self.seed, self.views, self.sparse, self.p = seed, views, sparse, float(p)
        self.shuffle_buffer, self.shuffle_shards = shuffle_buffer, shuffle_shards
        self.rank, self.world_size, self.reader = rank, world_size, reader
        self.pad = world_size > 1 if pad is None else pad
        self._lengths = self.source.shard_lengths()
        # shared with DataLoader workers, as ReinforcedDataset's epoch (persistent workers see set_epoch)
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._inherited = InheritedObjects()  # a forked worker freezes what it inherited (drkit.data.workers)

    def _match_rows(self) -> np.ndarray:
        """The store row of every sample of the source: by key when the store has keys, else by
        position after the fingerprint check."""
        src, store = self.source, self.store
        if not store.has_sample_keys:
            store.check_dataset(src)
            return np.arange(len(src), dtype=np.int64)
        rows = store.rows_for([src.key(i) for i in range(len(src))])
        missing = np.flatnonzero(rows < 0)
        if len(missing):
            examples = ", ".join(repr(src.key(int(i))) for i in missing[:5])
            raise StoreMismatchError(f"{store.root} has no records for {len(missing)} of the {len(src)} samples of "
                                     f"{src.name} (e.g. {examples}); reinforce these shards, or stream the shards "
                                     "the store was made from")
        if len(np.unique(rows)) != len(rows):
            raise StoreMismatchError(f"{src.name}: several samples share a store row (duplicate keys)")
        return rows.astype(np.int64)

    # ------------------------------------------------------------------ epochs and splits

    @property
    def epoch(self) -> int:
        return int(self._epoch.item())  # .item(): ~0.1 us, indexing the tensor ~1 us (read per item)

    def set_epoch(self, epoch: int) -> None:
        """Shuffle the shards and choose the stored augmentations anew (call before iterating)."""
        if int(epoch) < 0:
            raise ConfigError(f"epoch must be non-negative, got {epoch}")
        self._epoch[0] = int(epoch)

    def shard_order(self, epoch: int | None = None) -> np.ndarray:
        e = self.epoch if epoch is None else epoch
        n = len(self._lengths)
        if not self.shuffle_shards:
            return np.arange(n)
        return rng_at(self.seed, STREAM_SHARD_ORDER, e).permutation(n)

    def __len__(self) -> int:
        n = int(self._lengths.sum())
        return n * (self.rank + 1) // self.world_size - n * self.rank // self.world_size

    def _slot(self) -> tuple[int, int]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        return self.rank * workers + worker, self.world_size * workers

    # ------------------------------------------------------------------ reading

    def _stream(self, runs: list[tuple[int, int, int]]) -> Iterator[tuple[int, Any]]:
        """(source sample, its encoded image bytes or webdataset sample dict) for each run, in file order."""
        if self.reader == "index":
            for shard, skip, take in runs:
                start = int(self.source.starts[shard])
                for j in range(start + skip, start + skip + take):
                    yield j, self.source.encoded(j)
            return
        # webdataset (the `sources` extra) is optional: imported when a stream starts
        from webdataset.tariterators import tarfile_samples

        for shard, skip, take in runs:
            start = int(self.source.starts[shard])
            stream = tarfile_samples(iter([{"url": str(self.source.shards[shard])}]))
            for j, sample in enumerate(stream):
                if j < skip:
                    continue
                if j >= skip + take:
                    break
                yield start + j, sample

    def __iter__(self) -> Iterator[tuple[Any, Any, int]]:
        # webdataset's shuffle buffer, seeded by (seed, epoch, slot): a pure function of them
        from webdataset.filters import shuffle

        self._inherited.check()
        epoch = self.epoch
        slot, slots = self._slot()
        runs = slot_runs(self._lengths, self.shard_order(epoch), slot, slots)
        items: Iterator[tuple[int, Any]] = self._stream(runs)
        if self.shuffle_buffer > 1:
            seed = int(rng_at(self.seed, STREAM_SHARD_ORDER, epoch, slot + 1).integers(2**63))
            items = shuffle(self.shuffle_buffer, self.shuffle_buffer, seed=seed)(items)
        total = int(self._lengths.sum())
        want = -(-total // slots) if self.pad else None
        first: tuple[int, Any] | None = None
        count = 0
        for index, sample in items:
            first = first or (index, sample)
            count += 1
            yield self._item(index, sample)
        if want is not None and count < want:  # one short (the runs differ by at most one sample)
            if first is not None:
                yield self._item(*first)
            else:  # fewer samples than (rank, worker) slots: an empty run repeats a sample read by index
                i = slot % total
                yield self.replay_item(int(self.rows[i]), self.source.image(i), int(self.source.labels[i]))

    def _item(self, index: int, sample: Any) -> tuple[Any, Any, int]:
        src = self.source
        if isinstance(sample, bytes):  # reader="index": the index's label, its key by construction
            return self.replay_item(int(self.rows[index]), src.decode(index, sample), int(src.labels[index]))
        key = sample["__key__"]
        if key != src.key(index):
            raise DataError(f"{src.shards[src.shard_of(index)]} changed since it was indexed: sample {index} is "
                            f"{key!r}, the index says {src.key(index)!r}; delete the index cache "
                            f"({src.name}) or restore the shard")
        where = f"sample {key!r} of {src.shards[src.shard_of(index)]}"
        image = decode_bytes(pick_member(sample, src.image_ext, IMAGE_EXTENSIONS, "image", where), where,
                             src.channels)
        label = parse_label(pick_member(sample, src.label_ext, LABEL_EXTENSIONS, "label", where), where)
        return self.replay_item(int(self.rows[index]), image, label)

    # ------------------------------------------------------------------ replay (as ReinforcedDataset)

    def replay_item(self, row: int, image: torch.Tensor, label: int) -> tuple[Any, Any, int]:
        """``(view, target, label)`` of store row ``row`` whose source image is ``image``: the
        computation of ``ReinforcedDataset.__getitem__`` (same choice of augmentation per (seed,
        epoch, row), same original-image branch for ``p < 1``)."""
        epoch = self.epoch
        if replays_original(self.seed, row, epoch, self.p):
            view, target = self._hard(image, label)
            if self.views > 1:
                view = view.expand(self.views, *view.shape).clone()
                target = (tuple(t.expand(self.views, -1).clone() for t in target) if self.sparse
                          else target.expand(self.views, -1).clone())
            return view, target, label
        augs = replayed_augmentations(self.seed, row, epoch, self.store.num_augs, self.views)
        if self.views == 1:
            a = int(augs[0])
            return self._replay(row, a, image), self._target(row, a), label
        views = torch.stack([self._replay(row, int(a), image) for a in augs])
        return views, stack_targets([self._target(row, int(a)) for a in augs]), label

    def _partner_image(self, row: int) -> torch.Tensor:
        sample = int(self.sample_of_row[row])
        if sample < 0:
            raise StoreMismatchError(f"a mixing record's partner (store row {row}) is not among the streamed shards "
                                     f"{self.source.name}; stream the whole dataset the store was made from")
        return self.source.image(sample)

    def _replay(self, row: int, aug: int, image: torch.Tensor) -> torch.Tensor:
        return self.policy.replay(image, self.store.record(row, aug), self._partner_image,
                                  lambda p, a, _: self.store.record(p, a))

    def _target(self, row: int, aug: int) -> Any:
        rec = self.store.record(row, aug)
        return record_target(rec, self.num_classes, sparse=self.sparse)

    def _hard(self, image: torch.Tensor, label: int) -> tuple[torch.Tensor, Any]:
        view = to_float(center_fit(image, tuple(self.policy.size)))
        return view, hard_target(label, self.num_classes, self.store.topk, sparse=self.sparse)

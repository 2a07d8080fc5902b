"""Computing a store's records: every (sample, augmentation) view made by the policy in DataLoader
workers, the teacher run on fixed-size chunks from each shard's start, its output sparsified.

Why the records are byte-identical whatever the batch size, worker count or interruptions:
parameters are a pure function of (seed, sample, augmentation) (:mod:`drkit.augment.rng`); records
are laid out shard by shard in (sample, augmentation) order and the teacher always sees the same
chunks of that order (``teacher_batch`` rows from each shard's start), so its floating-point results
do not depend on how the DataLoader batched the images.

Each shard also gets its key table (:mod:`drkit.data.samples`): the sample's key and label, and the
hash of its decoded pixels, taken in the worker that decodes the sample for its augmentation 0 —
no second pass over the data."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..augment.policies import Policy
from ..data import ImageDataset
from ..data.samples import content_hash, key_table
from ..data.workers import InheritedObjects
from ..errors import TeacherError
from .config import ReinforceConfig
from .targets import topk_sparsify
from .teachers import TeacherEnsemble


class AugmentedRecords(Dataset):
    """Flat view of the records of some shards: item ``r`` is the augmented view of one
    (sample, augmentation) pair, its parameter record and, for augmentation 0, ``(sample, content
    hash)`` of its source image (else None), in shard order."""

    def __init__(self, dataset: ImageDataset, policy: Policy, *, seed: int, num_augs: int,
                 ranges: Sequence[tuple[int, int]]) -> None:
        self.dataset, self.policy, self.seed, self.num_augs = dataset, policy, seed, num_augs
        self.starts = [a for a, _ in ranges]
        self.offsets = np.cumsum([0] + [(b - a) * num_augs for a, b in ranges])
        self._inherited = InheritedObjects()  # a forked worker freezes what it inherited (drkit.data.workers)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, r: int) -> tuple[int, int]:
        part = int(np.searchsorted(self.offsets, r, side="right")) - 1
        i, j = divmod(r - int(self.offsets[part]), self.num_augs)
        return self.starts[part] + i, j

    def __getitem__(self, r: int) -> tuple[torch.Tensor, np.ndarray, tuple[int, int] | None]:
        self._inherited.check()
        i, j = self.locate(r)
        n = len(self.dataset)
        image = self.dataset.image(i)
        params = self.policy.sample(self.seed, i, j, num_samples=n, num_augs=self.num_augs,
                                    image_hw=image.shape[-2:])
        view = self.policy.replay(image, params, self.dataset.image,
                                  lambda p, a, im: self.policy.sample_base(self.seed, p, a, image_hw=im.shape[-2:]))
        return view, params, ((i, content_hash(image)) if j == 0 else None)


def _collate(batch: list[tuple[torch.Tensor, np.ndarray, tuple[int, int] | None]]
             ) -> tuple[torch.Tensor, np.ndarray, list[tuple[int, int]]]:
    return torch.stack([b[0] for b in batch]), np.stack([b[1] for b in batch]), [b[2] for b in batch if b[2]]


class ShardComputer:
    """Computes the records of shards: augmentation in DataLoader workers, the teacher on
    ``device`` in fixed ``teacher_batch`` chunks from each shard's start. Engines (local, Ray)
    call :meth:`run` and hand the resulting arrays to a :class:`ShardWriter`."""

    def __init__(self, dataset: ImageDataset, policy: Policy, teacher: TeacherEnsemble, dtype: np.dtype,
                 config: ReinforceConfig, device: torch.device) -> None:
        self.dataset, self.policy, self.dtype, self.config, self.device = dataset, policy, dtype, config, device
        self.teacher = teacher.to(device)
        self.topk = min(config.topk, dataset.num_classes)

    def _forward(self, views: torch.Tensor, first_record: int) -> torch.Tensor:
        probs = self.teacher(views.to(self.device, non_blocking=True)).float()
        if probs.ndim != 2 or probs.shape[1] != self.dataset.num_classes:
            raise TeacherError(
                f"the teacher returns {tuple(probs.shape[1:])} outputs per image but the dataset has "
                f"{self.dataset.num_classes} classes; give it a head with {self.dataset.num_classes} outputs"
            )
        bad = ~torch.isfinite(probs).all(dim=1)
        if bad.any():
            r = first_record + int(bad.nonzero()[0, 0])
            raise TeacherError(
                f"the teacher produced NaN/inf for record {r} (sample {r // self.config.num_augs}, "
                f"augmentation {r % self.config.num_augs}); check its weights and input normalization"
            )
        return probs

    def probe(self) -> None:
        """Run the teacher on one view before anything is written (width, finiteness)."""
        view, _, _ = AugmentedRecords(self.dataset, self.policy, seed=self.config.seed, num_augs=self.config.num_augs,
                                   ranges=[(0, 1)])[0]
        self._forward(view[None], 0)

    def run(self, shards: Sequence[tuple[int, int, int]],
            on_progress: Callable[[int], None] | None = None
            ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        """Yield ``(shard index, first sample, records, key table)`` for each of ``shards`` in order."""
        if not shards:
            return
        cfg, A = self.config, self.config.num_augs
        records = AugmentedRecords(self.dataset, self.policy, seed=cfg.seed, num_augs=A,
                                   ranges=[(a, b) for _, a, b in shards])
        workers = cfg.workers()
        loader = DataLoader(records, batch_size=cfg.batch_size, shuffle=False, num_workers=workers,
                            collate_fn=_collate, pin_memory=self.device.type == "cuda",
                            persistent_workers=False, prefetch_factor=4 if workers else None)
        it = iter(loader)
        views: list[torch.Tensor] = []
        params: list[np.ndarray] = []
        hashes: dict[int, int] = {}  # sample -> content hash, from its augmentation 0's item
        buffered = 0

        def take(n: int) -> tuple[torch.Tensor, np.ndarray]:
            nonlocal views, params, buffered
            x, p = torch.cat(views), np.concatenate(params)
            views, params, buffered = [x[n:]], [p[n:]], buffered - n
            return x[:n], p[:n]

        for s, a, b in shards:
            rows = (b - a) * A
            out = np.zeros(rows, dtype=self.dtype)
            done = 0
            while done < rows:
                need = min(cfg.teacher_batch, rows - done)
                while buffered < need:
                    x, p, h = next(it)
                    hashes.update(h)
                    views.append(x)
                    params.append(p)
                    buffered += len(x)
                    if on_progress:
                        on_progress(len(x))
                x, p = take(need)
                probs = self._forward(x, a * A + done)
                values, ids = topk_sparsify(probs, self.topk)
                chunk = out[done : done + need]
                for name in p.dtype.names:
                    chunk[name] = p[name]
                chunk["probs"] = values.cpu().numpy()
                if "classes" in self.dtype.names:
                    chunk["classes"] = ids.cpu().numpy()
                done += need
            keys = key_table([self.dataset.key(i) for i in range(a, b)], [hashes.pop(i) for i in range(a, b)],
                             self.dataset.labels[a:b], where=f"{self.dataset.name}: ")
            yield s, a, out.reshape(b - a, A), keys

"""set_epoch reaches DataLoader workers, persistent or not (issue 21, point 7): with
``persistent_workers=True`` every epoch used to replay epoch 0's stored augmentations."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from conftest import tiny_teacher
from torch.utils.data import DataLoader

import drkit
from drkit.errors import ConfigError

EPOCHS = 3


@pytest.fixture(scope="module")
def base() -> drkit.ImageDataset:
    return drkit.load_dataset("digits").subset(np.arange(32))


@pytest.fixture(scope="module")
def store(base, tmp_path_factory):
    return drkit.reinforce(base, tiny_teacher(1, 10), tmp_path_factory.mktemp("s") / "s", policy="cropflip",
                           num_augs=8, topk=3, shard_size=16, teacher_batch=16, num_workers=0, progress=False)


def _in_process(base, store, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    ds = drkit.ReinforcedDataset(base, store)
    ds.set_epoch(epoch)
    items = [ds[i] for i in range(len(ds))]
    return torch.stack([v for v, _, _ in items]), torch.stack([t for _, t, _ in items])


@pytest.mark.parametrize("persistent", [False, True], ids=["fresh-workers", "persistent-workers"])
def test_every_epoch_reaches_the_workers(base, store, persistent):
    ds = drkit.ReinforcedDataset(base, store)
    loader = DataLoader(ds, batch_size=8, shuffle=False, num_workers=2, persistent_workers=persistent)
    seen = []
    for epoch in range(EPOCHS):
        ds.set_epoch(epoch)
        batches = list(loader)
        seen.append((torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])))
    for epoch, (views, targets) in enumerate(seen):
        want_views, want_targets = _in_process(base, store, epoch)
        assert torch.equal(views, want_views), f"epoch {epoch}: the workers replayed another epoch"
        assert torch.equal(targets, want_targets)
    assert not torch.equal(seen[0][0], seen[1][0]) and not torch.equal(seen[1][0], seen[2][0])


def test_the_epoch_survives_pickling_and_is_checked(base, store):
    ds = drkit.ReinforcedDataset(base, store)
    ds.set_epoch(5)
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.epoch == 5 and [int(clone.choose(i)[0]) for i in range(8)] == [int(ds.choose(i)[0]) for i in range(8)]
    ds.epoch = 7  # the attribute and set_epoch are one
    assert ds.epoch == 7 and clone.epoch == 5  # a pickled copy is a copy, not a share
    with pytest.raises(ConfigError, match="non-negative"):
        ds.set_epoch(-1)

"""ReinforcedDataset: exact replay, targets, determinism across workers, samplers, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _image_folders import mixed_size_folder
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

import drkit
from drkit.errors import ConfigError, StoreMismatchError
from drkit.models import SmallCNN


class _Recorder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.model = SmallCNN(1, 10, width=4)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return self.model(x)


@pytest.fixture(scope="module")
def base() -> drkit.ImageDataset:
    return drkit.load_dataset("digits").subset(np.arange(48))


@pytest.fixture(scope="module", params=["randaugment+mixing", "cropflip"])
def made(request, base, tmp_path_factory):
    """(store, inputs the teacher saw in record order) for a sparse (k=3) store."""
    teacher = _Recorder()
    out = tmp_path_factory.mktemp("store") / request.param
    store = drkit.reinforce(base, teacher, out, policy=request.param, num_augs=4, topk=3, shard_size=16,
                            teacher_batch=10, num_workers=0, progress=False)
    seen = torch.cat(teacher.seen[1:])  # [0] is the probe before anything is written
    return store, seen


def test_replayed_view_is_the_teachers_view(made, base):
    store, seen = made
    ds = drkit.ReinforcedDataset(base, store)
    for i in (0, 17, 47):
        for j in range(store.num_augs):
            assert torch.equal(ds.replay(i, j), seen[i * store.num_augs + j])


def test_targets_sum_to_one_and_match_the_store(made, base):
    store, _ = made
    ds = drkit.ReinforcedDataset(base, store)
    for i in range(0, 48, 5):
        view, target, label = ds[i]
        (j,) = ds.choose(i)
        rec = store.record(i, int(j))
        assert target.shape == (10,) and abs(float(target.sum()) - 1.0) < 1e-6
        assert label == int(base.labels[i])
        # the top-k entries are the stored float16 values (up to the renormalization of densify)
        got = target[torch.as_tensor(rec["classes"].astype(np.int64))]
        assert torch.allclose(got, torch.as_tensor(rec["probs"].astype(np.float32)), atol=2e-3)
        assert torch.equal(view, ds.replay(i, int(j)))


def test_sparse_targets_and_multi_view(made, base):
    store, _ = made
    ds = drkit.ReinforcedDataset(base, store, sparse=True, views=3)
    views, (values, ids), label = ds[5]
    assert views.shape == (3, 1, 8, 8) and values.shape == (3, 3) and ids.shape == (3, 3)
    augs = ds.choose(5)
    assert len(set(augs.tolist())) == 3  # distinct stored augmentations
    for v, a in zip(views, augs, strict=True):
        assert torch.equal(v, ds.replay(5, int(a)))


def test_choice_is_a_function_of_seed_epoch_index(made, base):
    store, _ = made
    a, b = drkit.ReinforcedDataset(base, store, seed=1), drkit.ReinforcedDataset(base, store, seed=1)
    first = [int(a.choose(i)[0]) for i in range(48)]
    assert first == [int(b.choose(i)[0]) for i in range(48)]
    a.set_epoch(1)
    assert first != [int(a.choose(i)[0]) for i in range(48)]
    # every stored augmentation gets used over a few epochs
    used = {int(a.choose(0)[0]) for a.epoch in range(40)}
    assert used == set(range(store.num_augs))


def _batches(ds, workers: int, sampler=None) -> list[torch.Tensor]:
    loader = DataLoader(ds, batch_size=7, shuffle=False, num_workers=workers, sampler=sampler)
    return [torch.cat([x.flatten(1), t], 1) for x, t, _ in loader]


def test_same_batches_with_and_without_workers(made, base):
    store, _ = made
    ds = drkit.ReinforcedDataset(base, store)
    ds.set_epoch(3)
    one, two = _batches(ds, 0), _batches(ds, 2)
    assert len(one) == len(two) and all(torch.equal(a, b) for a, b in zip(one, two, strict=True))


def test_distributed_sampler_partitions_the_epoch(made, base):
    store, _ = made
    ds = drkit.ReinforcedDataset(base, store)
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0)
        sampler.set_epoch(2)
        ds.set_epoch(2)
        seen.append(list(sampler))
        assert len(_batches(ds, 0, sampler)) == 4  # 24 items per rank, batches of 7
    assert sorted(seen[0] + seen[1]) == list(range(48))


def test_wrong_dataset_policy_or_views_is_a_clear_error(made, base):
    store, _ = made
    with pytest.raises(StoreMismatchError, match="samples"):
        drkit.ReinforcedDataset(drkit.load_dataset("digits").subset(np.arange(40)), store)
    other = drkit.load_dataset("digits").subset(np.arange(48, 96))
    with pytest.raises(StoreMismatchError, match="labels|content"):
        drkit.ReinforcedDataset(other, store)
    wrong = "cropflip" if store.policy_config.name != "cropflip" else "mixing"
    with pytest.raises(StoreMismatchError, match="policy"):
        drkit.ReinforcedDataset(base, store, policy=wrong)
    with pytest.raises(ConfigError, match="views"):
        drkit.ReinforcedDataset(base, store, views=store.num_augs + 1)


@pytest.mark.parametrize("policy", ["randaugment+mixing", "cropflip"])
def test_image_folder_of_mixed_sizes_reinforces_and_replays(tmp_path, policy):
    """Real image folders mix sizes: every view comes out at ``image_size`` and replays exactly."""
    base = drkit.load_dataset(f"imagefolder:{mixed_size_folder(tmp_path / 'data')}")
    assert len({tuple(base.image(i).shape) for i in range(len(base))}) > 1
    torch.manual_seed(0)
    teacher = _Recorder()
    teacher.model = SmallCNN(3, 3, width=4)
    store = drkit.reinforce(base, teacher, tmp_path / "store", policy=policy, num_augs=3, topk=3, image_size=16,
                            shard_size=4, teacher_batch=5, num_workers=0, progress=False)
    seen = torch.cat(teacher.seen[1:])
    assert seen.shape == (36, 3, 16, 16)
    ds = drkit.ReinforcedDataset(base, store)
    for i in range(len(base)):
        for j in range(3):
            assert torch.equal(ds.replay(i, j), seen[i * 3 + j])


def test_p_returns_the_original_image_with_its_hard_label_at_rate_one_minus_p(made, base):
    store, _ = made
    ds = drkit.ReinforcedDataset(base, store, p=0.5, seed=3)
    full = drkit.ReinforcedDataset(base, store, seed=3)
    originals = 0
    for epoch in range(4):
        ds.set_epoch(epoch)
        full.set_epoch(epoch)
        for i in range(len(base)):
            view, target, label = ds[i]
            assert label == int(base.labels[i])
            if ds.original(i):
                originals += 1
                assert torch.allclose(view, base.image(i).float() / 255)  # 8x8 store: the image as it is
                assert target.argmax() == label and target.sum() == 1 and target.max() == 1
            else:  # a reinforced item is the one p=1 gives
                v1, t1, _ = full[i]
                assert torch.equal(view, v1) and torch.equal(target, t1)
    n = 4 * len(base)
    assert 0.35 * n < originals < 0.65 * n  # binomial(192, 0.5): far inside
    assert ds.original(0) == drkit.ReinforcedDataset(base, store, p=0.5, seed=3).original(0)  # pure function


def test_p_sparse_and_views_and_bounds(made, base):
    store, _ = made
    ds = drkit.ReinforcedDataset(base, store, p=0.0, sparse=True, views=2)
    views, (values, ids), label = ds[5]
    assert views.shape == (2, 1, 8, 8) and values.shape == ids.shape == (2, store.topk)
    assert (ids[:, 0] == label).all() and (values[:, 0] == 1).all() and values[:, 1:].sum() == 0
    assert len(set(ids[0].tolist())) == store.topk  # distinct class ids
    assert not drkit.ReinforcedDataset(base, store, p=1.0).original(5)
    for bad in (-0.1, 1.5):
        with pytest.raises(ConfigError, match="must be in"):
            drkit.ReinforcedDataset(base, store, p=bad)

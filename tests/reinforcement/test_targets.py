"""Soft targets: top-k sparsification (float16, smallest id type) and densification."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from drkit import densify, topk_sparsify
from drkit.reinforcement.targets import class_id_dtype


@pytest.mark.parametrize(
    ("num_classes", "dtype"),
    [(2, np.uint8), (10, np.uint8), (256, np.uint8), (257, np.uint16), (1000, np.uint16),
     (65536, np.uint16), (65537, np.uint32), (21843, np.uint16)],
)
def test_class_id_dtype_boundaries(num_classes, dtype):
    dt = class_id_dtype(num_classes)
    assert dt == np.dtype(dtype)
    assert dt.str in ("|u1", "<u2", "<u4")  # explicit little-endian where it matters
    assert np.iinfo(dt).max >= num_classes - 1


def test_class_id_dtype_too_many():
    with pytest.raises(ValueError, match="too many classes"):
        class_id_dtype(2**32 + 1)


def _probs(b: int, c: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(3 * torch.randn(b, c, generator=g), dim=-1)


def test_topk_sparsify_values_and_ids():
    probs = torch.tensor([[0.05, 0.5, 0.1, 0.3, 0.05], [0.7, 0.02, 0.08, 0.1, 0.1 - 1e-6]])
    values, ids = topk_sparsify(probs, 3)
    assert values.dtype == torch.float16 and values.shape == (2, 3)
    assert ids.dtype == torch.int64 and ids.shape == (2, 3)
    assert ids[0].tolist() == [1, 3, 2]
    assert ids[1].tolist() == [0, 3, 4]
    torch.testing.assert_close(values[0], torch.tensor([0.5, 0.3, 0.1], dtype=torch.float16))


def test_topk_sparsify_is_sorted_and_matches_the_probabilities():
    probs = _probs(64, 100)
    values, ids = topk_sparsify(probs, 10)
    assert (values[:, :-1] >= values[:, 1:]).all()  # largest first
    assert torch.equal(values, torch.gather(probs, 1, ids).to(torch.float16))
    assert torch.equal(values[:, 0], probs.max(1).values.to(torch.float16))
    assert (ids.unique(dim=1).shape[1] == 10)
    for row in range(64):  # every kept class beats every dropped one
        dropped = torch.ones(100, dtype=torch.bool)
        dropped[ids[row]] = False
        assert probs[row, ids[row]].min() >= probs[row, dropped].max()


@pytest.mark.parametrize("k", [5, 7, 50])
def test_topk_sparsify_dense_when_k_covers_all_classes(k):
    probs = _probs(4, 5)
    values, ids = topk_sparsify(probs, k)
    assert values.shape == (4, 5) and values.dtype == torch.float16
    assert torch.equal(values, probs.to(torch.float16))  # class order, not sorted
    assert ids.tolist() == [[0, 1, 2, 3, 4]] * 4


@pytest.mark.parametrize("k", [0, -1])
def test_topk_sparsify_rejects_nonpositive_k(k):
    with pytest.raises(ValueError, match="k must be positive"):
        topk_sparsify(_probs(2, 5), k)


def test_densify_of_sparsified_probs():
    num_classes, k = 20, 4
    probs = _probs(32, num_classes, seed=1)
    values, ids = topk_sparsify(probs, k)
    dense = densify(values, ids, num_classes)
    assert dense.dtype == torch.float32 and dense.shape == (32, num_classes)
    torch.testing.assert_close(dense.sum(-1), torch.ones(32), rtol=0, atol=1e-6)
    for row in range(32):
        kept = torch.zeros(num_classes, dtype=torch.bool)
        kept[ids[row]] = True
        v = values[row].float()
        # the stored values at their ids (renormalised only if float16 rounding pushed them past 1)
        torch.testing.assert_close(dense[row, ids[row]], v / max(1.0, float(v.sum())), rtol=1e-6, atol=1e-7)
        rest = dense[row, ~kept]
        assert torch.allclose(rest, rest[0].expand_as(rest))  # spread evenly
        expected = float((1 - v.sum()).clamp_min(0)) / (num_classes - k)
        assert rest[0].item() == pytest.approx(expected, rel=1e-3, abs=1e-6)
    # the top-k classes stay the top-k classes
    assert torch.equal(dense.topk(k, dim=-1).indices.sort(-1).values, ids.sort(-1).values)


def test_densify_example():
    out = densify(torch.tensor([0.5, 0.3]), torch.tensor([2, 0]), 4)
    torch.testing.assert_close(out, torch.tensor([0.3, 0.1, 0.5, 0.1]))


def test_densify_accepts_numpy_records():
    values = np.array([[0.6, 0.2]], dtype=np.float16)
    ids = np.array([[1, 3]], dtype=np.uint8)
    out = densify(values, ids, 5)
    torch.testing.assert_close(out, torch.tensor([[0.2 / 3, 0.6, 0.2 / 3, 0.2, 0.2 / 3]]), rtol=1e-3, atol=1e-4)


def test_densify_dense_path():
    probs = _probs(8, 5, seed=2)
    values, _ = topk_sparsify(probs, 5)
    out = densify(values, None, 5)
    torch.testing.assert_close(out, probs, rtol=2e-3, atol=1e-3)
    torch.testing.assert_close(out.sum(-1), torch.ones(8), rtol=0, atol=1e-6)


def test_densify_when_topk_has_all_the_mass():
    out = densify(torch.tensor([[1.0, 0.0]]), torch.tensor([[3, 1]]), 4)
    assert out.tolist() == [[0.0, 0.0, 0.0, 1.0]]


def test_densify_with_float16_overshoot_still_sums_to_one():
    # float16 rounding can make the top-k sum exceed 1: nothing negative, still a distribution
    values = torch.tensor([[0.6006, 0.4004]], dtype=torch.float16)
    out = densify(values, torch.tensor([[0, 1]]), 3)
    assert (out >= 0).all() and out[0, 2].item() == 0.0
    torch.testing.assert_close(out.sum(-1), torch.ones(1))

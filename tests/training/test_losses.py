"""Soft-target losses against hand computation and each other."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import drkit
from drkit.training.losses import (
    kd_kl_loss,
    soft_target_cross_entropy,
    sparse_soft_target_cross_entropy,
)


def test_one_hot_target_is_cross_entropy():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    labels = torch.tensor([0, 1])
    assert torch.allclose(soft_target_cross_entropy(logits, F.one_hot(labels, 3).float()),
                          F.cross_entropy(logits, labels))


def test_hand_computed_soft_target():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax = (0.25, 0.75)
    target = torch.tensor([[0.5, 0.5]])
    expected = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    assert soft_target_cross_entropy(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_kl_differs_from_cross_entropy_by_target_entropy():
    torch.manual_seed(0)
    logits, target = torch.randn(5, 7), torch.softmax(torch.randn(5, 7), -1)
    entropy = -(target * target.log()).sum(-1).mean()
    assert torch.allclose(kd_kl_loss(logits, target), soft_target_cross_entropy(logits, target) - entropy, atol=1e-6)


@pytest.mark.parametrize("k", [1, 3, 9])
def test_sparse_equals_dense(k):
    torch.manual_seed(k)
    logits, probs = torch.randn(6, 9), torch.softmax(2 * torch.randn(6, 9), -1)
    values, ids = drkit.topk_sparsify(probs, k)
    dense = soft_target_cross_entropy(logits, drkit.densify(values, ids if k < 9 else None, 9))
    sparse = sparse_soft_target_cross_entropy(logits, values.float(), ids)
    assert sparse.item() == pytest.approx(dense.item(), rel=1e-5)


def test_temperature_and_shape_check():
    logits, target = torch.zeros(2, 4), torch.full((2, 4), 0.25)
    assert soft_target_cross_entropy(logits, target, temperature=2.0).item() == pytest.approx(4 * math.log(4), rel=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        soft_target_cross_entropy(logits, torch.zeros(2, 5))

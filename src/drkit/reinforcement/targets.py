"""Soft targets: sparsify the teacher's probabilities for storage, densify them for training.

The store keeps the top-k probabilities in float16 and their class ids in the smallest unsigned
integer type that fits the number of classes (ml-dr keeps top-10). The mass outside the top-k is
not lost: densifying spreads ``1 - sum(top-k)`` evenly over the other classes, as ml-dr does.
When ``k >= num_classes`` the full distribution is stored and no ids are needed ("dense").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["class_id_dtype", "topk_sparsify", "densify", "record_target", "hard_target", "stack_targets"]


def class_id_dtype(num_classes: int) -> np.dtype:
    """Smallest unsigned integer dtype holding ids ``0 .. num_classes-1``."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if num_classes - 1 <= np.iinfo(dt).max:
            return np.dtype(dt).newbyteorder("<")
    raise ValueError(f"too many classes: {num_classes}")


def topk_sparsify(probs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, C)`` probabilities -> top-k values ``(B, k)`` (float16) and class ids ``(B, k)``
    (int64), largest first. With ``k >= C`` all classes are kept in class order."""
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    if k >= probs.shape[-1]:
        ids = torch.arange(probs.shape[-1], device=probs.device).expand_as(probs)
        return probs.to(torch.float16), ids
    values, ids = torch.topk(probs.float(), k, dim=-1, largest=True, sorted=True)
    return values.to(torch.float16), ids


def densify(values: torch.Tensor | np.ndarray, ids: torch.Tensor | np.ndarray | None, num_classes: int) -> torch.Tensor:
    """Top-k ``values`` at ``ids`` (``None``: dense, class order) -> ``(..., num_classes)``
    float32 distribution; the residual mass is spread evenly over the classes not in the top-k.

    Example:
        >>> densify(torch.tensor([0.5, 0.3]), torch.tensor([2, 0]), 4)
        tensor([0.3000, 0.1000, 0.5000, 0.1000])
    """
    v = torch.as_tensor(np.asarray(values, dtype=np.float32) if isinstance(values, np.ndarray) else values).float()
    if ids is None:
        out = v.clamp_min(0)
        return out / out.sum(-1, keepdim=True).clamp_min(1e-12)
    i = torch.as_tensor(np.asarray(ids, dtype=np.int64) if isinstance(ids, np.ndarray) else ids).long()
    k = v.shape[-1]
    residual = (1.0 - v.sum(-1, keepdim=True)).clamp_min(0.0)
    fill = residual / max(num_classes - k, 1)
    out = fill.expand(*v.shape[:-1], num_classes).clone()
    out.scatter_(-1, i, v.clamp_min(0))
    return out / out.sum(-1, keepdim=True)


def record_target(record: np.ndarray, num_classes: int, *, sparse: bool = False) -> Any:
    """The training target a stored record holds: its top-k teacher probabilities densified to
    ``(num_classes,)``, or with ``sparse`` the ``(values (k,), class ids (k,))`` pair (a dense
    store's ids are the class order)."""
    values = np.asarray(record["probs"], dtype=np.float32)
    names = record.dtype.names or ()
    ids = np.asarray(record["classes"], dtype=np.int64) if "classes" in names else None
    if sparse:
        ids = np.arange(len(values)) if ids is None else ids
        return torch.from_numpy(values), torch.from_numpy(ids)
    return densify(values, ids, num_classes)


def hard_target(label: int, num_classes: int, topk: int, *, sparse: bool = False) -> Any:
    """A hard label shaped as :func:`record_target` shapes a stored one: one-hot ``(num_classes,)``,
    or with ``sparse`` ``topk`` entries, the label first with value 1 (the original-image items of
    ``p < 1``)."""
    if sparse:
        ids = torch.tensor([label] + [c for c in range(num_classes) if c != label][: topk - 1])
        values = torch.zeros(topk)
        values[0] = 1.0
        return values, ids
    target = torch.zeros(num_classes)
    target[label] = 1.0
    return target


def stack_targets(targets: list[Any]) -> Any:
    """Targets of several views of one sample stacked: ``(V, classes)``, or a ``(values (V, k), ids
    (V, k))`` pair for sparse ones."""
    if isinstance(targets[0], tuple):
        return torch.stack([t[0] for t in targets]), torch.stack([t[1] for t in targets])
    return torch.stack(targets)

"""Soft targets: sparsify the teacher's probabilities for storage, densify them for training.

The store keeps the top-k probabilities in float16 and their class ids in the smallest unsigned
integer type that fits the number of classes (ml-dr keeps top-10). The mass outside the top-k is
not lost: densifying spreads ``1 - sum(top-k)`` evenly over the other classes, as ml-dr does.
When ``k >= num_classes`` the full distribution is stored and no ids are needed ("dense").
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["class_id_dtype", "topk_sparsify", "densify"]


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

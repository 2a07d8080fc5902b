"""Losses for soft targets, usable in any training loop.

``soft_target_cross_entropy(logits, target)`` is ``-sum(target * log_softmax(logits))``: with a
one-hot target it is ordinary cross-entropy, with a teacher's distribution it is knowledge
distillation (equal to KL(target || student) up to the target's entropy, a constant).
``kd_kl_loss`` is the temperature-scaled KL of Hinton et al. for users who want it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["soft_target_cross_entropy", "sparse_soft_target_cross_entropy", "kd_kl_loss"]


def soft_target_cross_entropy(logits: torch.Tensor, target: torch.Tensor, *, temperature: float = 1.0) -> torch.Tensor:
    """Mean over the batch of ``-sum_c target_c * log softmax(logits / T)_c``.

    Args:
        logits: ``(B, C)`` student logits.
        target: ``(B, C)`` probabilities (rows sum to 1).
        temperature: divides the logits; the loss is scaled by ``T**2`` so gradients keep their size.
    """
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} must have the same shape")
    logp = F.log_softmax(logits.float() / temperature, dim=-1)
    return -(target.float() * logp).sum(-1).mean() * (temperature**2)


def kd_kl_loss(logits: torch.Tensor, target: torch.Tensor, *, temperature: float = 1.0) -> torch.Tensor:
    """``T**2 * KL(target || softmax(logits / T))``, batch mean."""
    logp = F.log_softmax(logits.float() / temperature, dim=-1)
    return F.kl_div(logp, target.float(), reduction="batchmean") * (temperature**2)


def sparse_soft_target_cross_entropy(logits: torch.Tensor, values: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Soft-target cross-entropy against top-k targets, without materializing ``(B, C)`` targets.

    The residual mass ``1 - sum(values)`` is spread evenly over the ``C - k`` other classes, exactly
    as :func:`drkit.densify` does; the result equals
    ``soft_target_cross_entropy(logits, densify(values, ids, C))`` (after renormalization).

    Args:
        logits: ``(B, C)``; values: ``(B, k)`` probabilities; ids: ``(B, k)`` class ids.
    """
    logp = F.log_softmax(logits.float(), dim=-1)
    v = values.float().clamp_min(0)
    C, k = logits.shape[-1], v.shape[-1]
    # the residual has somewhere to go only when some classes are outside the top-k
    residual = (1.0 - v.sum(-1)).clamp_min(0) if C > k else torch.zeros_like(v[..., 0])
    total = v.sum(-1) + residual  # renormalize as densify does (float16 values may sum past 1)
    top = (v * logp.gather(-1, ids.long())).sum(-1)
    rest = logp.sum(-1) - logp.gather(-1, ids.long()).sum(-1)
    return -((top + residual / max(C - k, 1) * rest) / total).mean()

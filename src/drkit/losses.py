"""Losses for soft targets, usable in any training loop.

``soft_target_cross_entropy(logits, target)`` is ``-sum(target * log_softmax(logits))``: with a
one-hot target it is ordinary cross-entropy, with a teacher's distribution it is knowledge
distillation (equal to KL(target || student) up to the target's entropy, a constant).
``kd_kl_loss`` is the temperature-scaled KL of Hinton et al. for users who want it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["soft_target_cross_entropy", "kd_kl_loss"]


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

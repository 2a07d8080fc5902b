"""The agent's reward, read off the validation split only (Schiavone & Li, arXiv 2404.16300, §3.3):

    reward = Δ validation accuracy − λ · Δ mean predictive entropy on the validation set

The accuracy term pays for getting better; the entropy term pays for getting more certain, which
favours steps that fix classes the model is unsure about. Both terms are returned so that a run's
log shows which one drove the agent. Nothing here takes a test set: callers hold one back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from torch import nn

from ..data import ImageDataset
from ..errors import ConfigError
from ..inference import predict_probs
from ..metrics import accuracy, entropy, per_class_accuracy

__all__ = ["Validation", "Reward", "validate", "compute_reward"]


@dataclass(frozen=True)
class Validation:
    """A classifier's numbers on the validation split."""

    accuracy: float
    mean_entropy: float  # nats, mean over validation images
    per_class_accuracy: tuple[float, ...]  # NaN for a class absent from the split


@dataclass(frozen=True)
class Reward:
    value: float
    delta_accuracy: float
    delta_entropy: float
    entropy_weight: float

    def to_dict(self) -> dict[str, float]:
        d = asdict(self)
        d["reward"] = d.pop("value")
        return d


def validate(model: nn.Module, val: ImageDataset, *, batch_size: int = 512) -> Validation:
    """Accuracy, mean entropy and per-class accuracy of ``model`` on ``val`` (un-augmented)."""
    probs = predict_probs(model, val, batch_size=batch_size)
    labels = np.asarray(val.labels)
    return Validation(accuracy(probs, labels), float(entropy(probs).mean()),
                      tuple(float(v) for v in per_class_accuracy(probs, labels)))


def compute_reward(before: Validation, after: Validation, entropy_weight: float) -> Reward:
    """``(after.accuracy − before.accuracy) − λ·(after.mean_entropy − before.mean_entropy)``."""
    if entropy_weight < 0:
        raise ConfigError(f"the entropy weight λ must be >= 0, got {entropy_weight}")
    d_acc = after.accuracy - before.accuracy
    d_ent = after.mean_entropy - before.mean_entropy
    return Reward(d_acc - entropy_weight * d_ent, d_acc, d_ent, entropy_weight)

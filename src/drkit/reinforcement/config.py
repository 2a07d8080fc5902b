"""The settings of one reinforcement run (``drkit reinforce``'s options)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from ..augment.policies import DEFAULT_POLICY, PolicyConfig
from ..errors import ConfigError


@dataclass
class ReinforceConfig:
    """Settings of one reinforcement run. Every field except the throughput knobs
    (``batch_size``, ``num_workers``, ``device`` aside) is recorded in the store's manifest."""

    policy: str = field(default=DEFAULT_POLICY, metadata={"help": "augmentation policy: cropflip, randaugment, mixing, randaugment+mixing"})
    num_augs: int = field(default=16, metadata={"help": "stored augmentations per sample"})
    topk: int = field(default=10, metadata={"help": "teacher probabilities kept per augmentation (all when >= classes)"})
    seed: int = field(default=0, metadata={"help": "seed of every random choice"})
    temperature: float | None = field(default=None, metadata={"help": "softmax temperature of the teacher ensemble (default: the one `drkit teach` fitted for an ensemble:DIR, else 1)"})
    image_size: int | None = field(default=None, metadata={"help": "output side length of augmented views (default: source size)"})
    shard_size: int = field(default=1024, metadata={"help": "samples per shard (the unit of work and of resume)"})
    teacher_batch: int = field(default=256, metadata={"help": "records per teacher forward; fixed so results do not depend on batch_size"})
    batch_size: int = field(default=128, metadata={"help": "DataLoader batch size (throughput only)"})
    num_workers: int = field(default=-1, metadata={"help": "DataLoader workers; -1: one per spare CPU core, up to 8"})
    device: str | None = field(default=None, metadata={"help": "teacher device (default: cuda, mps, then cpu)"})
    allow_random_teacher: bool = field(default=False, metadata={"help": "accept teachers with random weights (cost benchmarks only: their soft labels are meaningless)"})

    def __post_init__(self) -> None:
        for name in ("num_augs", "topk", "shard_size", "teacher_batch", "batch_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.num_augs >= 65536:
            raise ConfigError(f"num_augs must be below 65536, got {self.num_augs}")
        if self.seed < 0:
            raise ConfigError(f"seed must be non-negative, got {self.seed}")
        if self.temperature is not None and not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        PolicyConfig(self.policy)  # validates the name

    def workers(self) -> int:
        if self.num_workers >= 0:
            return self.num_workers
        return max(0, min(8, (os.cpu_count() or 1) - 1))



def resolve_config(config: ReinforceConfig | None, overrides: dict[str, Any]) -> ReinforceConfig:
    try:
        return dataclasses.replace(config or ReinforceConfig(), **overrides)
    except TypeError as e:
        raise ConfigError(f"unknown reinforce setting: {e}") from e

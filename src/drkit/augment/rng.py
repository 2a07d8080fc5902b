"""Counter-based randomness.

DESIGN.md's first contract: every random choice (augmentation parameters, mixing partner, which
stored augmentation a training step replays) is a pure function of its coordinates — (seed,
stream, sample index, augmentation index[, epoch]) — never a position in a global RNG stream.
That is what makes a store byte-identical whatever the batch size, number of workers or engine,
and across interrupted-and-resumed runs.

The coordinates are hashed by numpy's ``SeedSequence`` into the key of a Philox generator (a
counter-based bit generator), ~20 µs per call on one core.
"""

from __future__ import annotations

import numpy as np

# Independent streams: the same (index, aug) coordinates must give unrelated draws per purpose.
STREAM_BASE = 0  # crop/flip/RandAugment/erasing parameters of a record
STREAM_MIX = 1  # mixing partner and mixing parameters of a record
STREAM_REPLAY = 2  # which stored augmentation a training step replays
STREAM_FRESH = 3  # freshly sampled parameters for ERM training (per epoch)
STREAM_ORIGINAL = 4  # ReinforcedDataset(p < 1): whether a step trains on the original image and label
STREAM_SHARD_ORDER = 100  # StreamedReinforcedDataset: the order of a source's shards per epoch, and shuffle seeds


def rng_at(seed: int, *coords: int) -> np.random.Generator:
    """A generator that depends only on ``seed`` and ``coords`` (non-negative integers)."""
    if seed < 0 or any(c < 0 for c in coords):
        raise ValueError(f"seed and coordinates must be non-negative, got {seed}, {coords}")
    return np.random.Generator(np.random.Philox(np.random.SeedSequence([int(seed), *map(int, coords)])))


def replayed_augmentations(seed: int, row: int, epoch: int, num_augs: int, views: int,
                           usable: np.ndarray | None = None) -> np.ndarray:
    """Which ``views`` distinct stored augmentations of store row ``row`` a training epoch replays: a
    pure function of (seed, row, epoch), so every reader of a store (map-style, streamed, any copy of
    the data) replays the same ones. ``usable``: the augmentation ids allowed (all when None)."""
    rng = rng_at(seed, STREAM_REPLAY, row, epoch)
    if usable is not None:
        if views == 1:
            return usable[[int(rng.integers(0, len(usable)))]]
        return rng.choice(usable, size=views, replace=False)
    if views == 1:
        return np.array([rng.integers(0, num_augs)])
    return rng.choice(num_augs, size=views, replace=False)


def replays_original(seed: int, row: int, epoch: int, p: float) -> bool:
    """Whether store row ``row`` trains on its original image and hard label this epoch (with
    probability ``1 - p``; ml-dr's option): a pure function of (seed, row, epoch), like the replay."""
    return p < 1 and float(rng_at(seed, STREAM_ORIGINAL, row, epoch).random()) >= p

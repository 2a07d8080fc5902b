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


def rng_at(seed: int, *coords: int) -> np.random.Generator:
    """A generator that depends only on ``seed`` and ``coords`` (non-negative integers)."""
    if seed < 0 or any(c < 0 for c in coords):
        raise ValueError(f"seed and coordinates must be non-negative, got {seed}, {coords}")
    return np.random.Generator(np.random.Philox(np.random.SeedSequence([int(seed), *map(int, coords)])))

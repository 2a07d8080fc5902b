"""Counter-based randomness: a generator is a pure function of (seed, coordinates)."""

from __future__ import annotations

import numpy as np
import pytest

from drkit.augment.rng import STREAM_BASE, STREAM_FRESH, STREAM_MIX, STREAM_REPLAY, rng_at


def _draw(seed: int, *coords: int) -> np.ndarray:
    return rng_at(seed, *coords).integers(0, 2**63, size=8)


def test_same_coordinates_same_draws():
    a = _draw(7, STREAM_BASE, 12, 3)
    b = _draw(7, STREAM_BASE, 12, 3)
    np.testing.assert_array_equal(a, b)
    # independent of anything drawn in between from other generators or numpy's global state
    np.random.seed(99)
    np.random.random(1000)
    _draw(7, STREAM_BASE, 13, 3)
    np.testing.assert_array_equal(_draw(7, STREAM_BASE, 12, 3), a)


def test_float_draws_are_reproducible():
    assert rng_at(0, 1, 2).random() == rng_at(0, 1, 2).random()
    assert rng_at(0, 1, 2).beta(1.0, 1.0) == rng_at(0, 1, 2).beta(1.0, 1.0)


@pytest.mark.parametrize(
    "coords",
    [
        (1, STREAM_BASE, 12, 3),  # other seed
        (0, STREAM_MIX, 12, 3),  # other stream
        (0, STREAM_BASE, 13, 3),  # other sample
        (0, STREAM_BASE, 12, 4),  # other augmentation
        (0, STREAM_BASE, 3, 12),  # coordinates swapped
        (0, STREAM_BASE, 12, 3, 0),  # one more coordinate (epoch)
        (0, STREAM_BASE, 12),  # one fewer
    ],
)
def test_other_coordinates_differ(coords):
    reference = _draw(0, STREAM_BASE, 12, 3)
    assert not np.array_equal(_draw(*coords), reference)


def test_streams_are_distinct_constants():
    streams = [STREAM_BASE, STREAM_MIX, STREAM_REPLAY, STREAM_FRESH]
    assert len(set(streams)) == 4 and min(streams) >= 0


def test_many_coordinates_give_distinct_draws():
    draws = {int(rng_at(3, STREAM_BASE, i, j).integers(0, 2**62)) for i in range(50) for j in range(4)}
    assert len(draws) == 200


def test_large_coordinates_are_accepted():
    x = rng_at(2**40, STREAM_BASE, 2**32 + 5, 65535).random()
    assert 0.0 <= x < 1.0
    assert x == rng_at(2**40, STREAM_BASE, 2**32 + 5, 65535).random()


@pytest.mark.parametrize("args", [(-1, 0, 0), (0, -1), (0, 0, 5, -2)])
def test_negative_input_raises(args):
    with pytest.raises(ValueError, match="non-negative"):
        rng_at(*args)


def test_returns_a_philox_generator():
    g = rng_at(0, 0)
    assert isinstance(g, np.random.Generator)
    assert isinstance(g.bit_generator, np.random.Philox)

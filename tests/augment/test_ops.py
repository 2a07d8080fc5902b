"""Augmentation ops, kornia-style per op: smoke (shape/dtype), parameters within bounds,
determinism under a seed, bad input; plus a parity test of RandAugment against torchvision."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from drkit.augment import ops
from drkit.augment.rng import rng_at

SIZES = [(8, 8), (28, 28), (40, 48), (64, 33), (17, 90)]


def _image(c: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (c, h, w), dtype=torch.uint8, generator=g)


def _gradient(c: int, h: int, w: int) -> torch.Tensor:
    """A non-symmetric test card (gradient + a bright block): every op at full magnitude changes it."""
    y = torch.linspace(0, 1, h)[:, None]
    x = torch.linspace(0, 1, w)[None, :]
    img = (40 + 180 * (0.7 * x + 0.3 * y**2)).round().to(torch.uint8)
    img[h // 4 : h // 2, w // 3 : w // 2] = 250  # an edge, for Sharpness
    return torch.stack([img.roll(k * 3, dims=1) for k in range(c)])


# --------------------------------------------------------------------------- resized crop


@pytest.mark.parametrize(("h", "w"), SIZES)
def test_resized_crop_box_inside_image(h, w):
    for i in range(200):
        top, left, ch, cw = ops.sample_resized_crop(rng_at(0, 0, i), h, w, (0.08, 1.0), (3 / 4, 4 / 3))
        assert all(isinstance(v, int) for v in (top, left, ch, cw))
        assert 0 < ch <= h and 0 < cw <= w
        assert 0 <= top and top + ch <= h
        assert 0 <= left and left + cw <= w


def test_resized_crop_area_follows_scale():
    areas = []
    for i in range(300):
        _, _, ch, cw = ops.sample_resized_crop(rng_at(1, 0, i), 100, 100, (0.5, 0.6), (1.0, 1.0))
        areas.append(ch * cw / 100**2)
    assert min(areas) >= 0.5 - 0.02 and max(areas) <= 0.6 + 0.02
    assert max(areas) - min(areas) > 0.05  # the scale range is actually used


def test_resized_crop_fallback_is_central_and_inside():
    # no box of ratio 1 with >= 90 % of a 10×40 image exists: the fallback is the central square
    box = ops.sample_resized_crop(rng_at(0, 0), 10, 40, (0.9, 1.0), (1.0, 1.0))
    assert box == (0, 15, 10, 10)
    box = ops.sample_resized_crop(rng_at(0, 0), 40, 10, (0.9, 1.0), (1.0, 1.0))
    assert box == (15, 0, 10, 10)


def test_resized_crop_sampling_is_deterministic():
    a = [ops.sample_resized_crop(rng_at(5, 0, i), 40, 48, (0.08, 1.0), (0.75, 4 / 3)) for i in range(20)]
    b = [ops.sample_resized_crop(rng_at(5, 0, i), 40, 48, (0.08, 1.0), (0.75, 4 / 3)) for i in range(20)]
    assert a == b
    assert len(set(a)) > 15  # and it does vary with the coordinates


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("size", [(8, 8), (32, 24)])
def test_apply_resized_crop_smoke(c, size):
    img = _image(c, 40, 48)
    out = ops.apply_resized_crop(img, (3, 5, 20, 30), size)
    assert out.dtype == torch.uint8 and out.shape == (c, *size)
    assert torch.equal(out, ops.apply_resized_crop(img, (3, 5, 20, 30), size))
    # the full box at the original size is the identity
    assert torch.equal(ops.apply_resized_crop(img, (0, 0, 40, 48), (40, 48)), img)


def test_apply_resized_crop_takes_the_box():
    img = _image(1, 20, 20)
    out = ops.apply_resized_crop(img, (4, 6, 5, 7), (5, 7))  # same size: a plain crop
    assert torch.equal(out, img[:, 4:9, 6:13])
    out_np = ops.apply_resized_crop(img, np.array([4, 6, 5, 7], dtype="<u2"), (5, 7))  # a stored box
    assert torch.equal(out_np, out)


# --------------------------------------------------------------------------- flip


def test_flip_probability_and_determinism():
    flips = [ops.sample_flip(rng_at(0, 0, i), 0.5) for i in range(400)]
    assert all(isinstance(f, bool) for f in flips)
    assert 150 < sum(flips) < 250
    assert flips == [ops.sample_flip(rng_at(0, 0, i), 0.5) for i in range(400)]
    assert not any(ops.sample_flip(rng_at(0, 0, i), 0.0) for i in range(50))
    assert all(ops.sample_flip(rng_at(0, 0, i), 1.0) for i in range(50))


@pytest.mark.parametrize("c", [1, 3])
def test_apply_flip(c):
    img = _image(c, 9, 13)
    assert torch.equal(ops.apply_flip(img, False), img)
    out = ops.apply_flip(img, True)
    assert out.dtype == torch.uint8 and out.shape == img.shape
    assert torch.equal(out, img.flip(-1))
    assert torch.equal(ops.apply_flip(out, True), img)


# --------------------------------------------------------------------------- RandAugment


def test_randaugment_sampling_bounds_and_determinism():
    n_ops = len(ops.RANDAUGMENT_OPS)
    seen = set()
    for i in range(300):
        op_ids, bins = ops.sample_randaugment(rng_at(0, 0, i), 3, 9, 31, magnitude_std=0.5)
        assert len(op_ids) == len(bins) == 3
        assert all(0 <= o < n_ops for o in op_ids)
        assert all(abs(b) <= 30 for b in bins)
        for o, b in zip(op_ids, bins, strict=True):
            if ops.RANDAUGMENT_OPS[o] not in ops._SIGNED:
                assert b >= 0
        seen.update(op_ids)
        assert (op_ids, bins) == ops.sample_randaugment(rng_at(0, 0, i), 3, 9, 31, magnitude_std=0.5)
    assert seen == set(range(n_ops))


def test_randaugment_fixed_magnitude_without_std():
    for i in range(100):
        op_ids, bins = ops.sample_randaugment(rng_at(2, 0, i), 2, 9, 31)
        assert all(abs(b) == 9 for b in bins)


def test_randaugment_magnitude_std_is_clipped():
    bins = [b for i in range(300) for b in ops.sample_randaugment(rng_at(3, 0, i), 2, 29, 31, 5.0)[1]]
    assert max(abs(b) for b in bins) == 30  # clipped at num_bins - 1, and reached
    assert len({abs(b) for b in bins}) > 3


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("op", range(len(ops.RANDAUGMENT_OPS)))
def test_every_randaugment_op_applies(op, c):
    img = _gradient(c, 24, 20)
    for signed_bin in (0, 1, 9, -9, 30, -30):
        if ops.RANDAUGMENT_OPS[op] not in ops._SIGNED and signed_bin < 0:
            continue
        out = ops.apply_randaugment(img, [op], [signed_bin], 31)
        assert out.dtype == torch.uint8 and out.shape == img.shape
        assert torch.equal(out, ops.apply_randaugment(img, [op], [signed_bin], 31))


# ops that change the test card at the largest magnitude, whatever the number of channels
_CHANGES_AT_MAX = ["ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Contrast",
                   "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize"]


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("name", _CHANGES_AT_MAX)
def test_randaugment_op_changes_the_image(name, c):
    img = _gradient(c, 24, 20)
    op = ops.RANDAUGMENT_OPS.index(name)
    assert not torch.equal(ops.apply_randaugment(img, [op], [30], 31), img)


def test_identity_and_magnitude_zero_leave_the_image():
    img = _gradient(3, 24, 20)
    assert torch.equal(ops.apply_randaugment(img, [0], [30], 31), img)
    for name in ("Rotate", "Brightness", "Contrast", "Color", "Posterize"):
        op = ops.RANDAUGMENT_OPS.index(name)
        assert torch.equal(ops.apply_randaugment(img, [op], [0], 31), img), name


def test_color_changes_rgb_only():
    op = ops.RANDAUGMENT_OPS.index("Color")
    rgb = _gradient(3, 24, 20)
    assert not torch.equal(ops.apply_randaugment(rgb, [op], [30], 31), rgb)
    gray = _gradient(1, 24, 20)
    assert torch.equal(ops.apply_randaugment(gray, [op], [30], 31), gray)


def test_sign_of_the_bin_matters():
    img = _gradient(1, 24, 20)
    op = ops.RANDAUGMENT_OPS.index("TranslateX")
    left, right = (ops.apply_randaugment(img, [op], [b], 31) for b in (-20, 20))
    assert not torch.equal(left, right)
    shift = int(150 / 331 * 20 * 20 / 30)
    assert torch.equal(right[:, :, shift:], img[:, :, :-shift])
    assert (right[:, :, :shift] == 0).all()


def test_ops_apply_in_order():
    img = _gradient(1, 24, 20)
    # AutoContrast depends on the fill the rotation brings in: the two do not commute
    rot, post = ops.RANDAUGMENT_OPS.index("Rotate"), ops.RANDAUGMENT_OPS.index("AutoContrast")
    both = ops.apply_randaugment(img, [rot, post], [20, 20], 31)
    by_hand = ops.apply_randaugment(ops.apply_randaugment(img, [rot], [20], 31), [post], [20], 31)
    assert torch.equal(both, by_hand)
    assert not torch.equal(both, ops.apply_randaugment(img, [post, rot], [20, 20], 31))


@pytest.mark.parametrize("name", [n for n in ops.RANDAUGMENT_OPS])
@pytest.mark.parametrize("c", [1, 3])
def test_randaugment_op_matches_torchvision(name, c):
    """Parity with torchvision's own RandAugment op at the same magnitude bin (±1 grey level:
    torchvision tabulates magnitudes in float32, drkit computes them in float64)."""
    num_bins, h, w = 31, 24, 20
    img = _gradient(c, h, w)
    ra = v2.RandAugment(num_magnitude_bins=num_bins, interpolation=v2.InterpolationMode.NEAREST)
    space_fn, signed = ra._AUGMENTATION_SPACE[name]
    op = ops.RANDAUGMENT_OPS.index(name)
    for b in (1, 9, 17, 30):
        for sign in ((1, -1) if signed else (1,)):
            mags = space_fn(num_bins, h, w)
            magnitude = float(mags[b]) * sign if mags is not None and mags.ndim > 0 else 0.0
            want = ra._apply_image_or_video_transform(img, name, magnitude, ra.interpolation, ra._fill)
            got = ops.apply_randaugment(img, [op], [sign * b], num_bins)
            diff = (got.int() - want.int()).abs().max().item()
            assert diff <= 1, f"{name} bin {sign * b}: differs from torchvision by {diff}"


@pytest.mark.parametrize("bad", [len(ops.RANDAUGMENT_OPS), 255, -1])
def test_unknown_randaugment_op_raises(bad):
    with pytest.raises(ValueError, match="unknown RandAugment op"):
        ops.apply_randaugment(_gradient(1, 8, 8), [bad], [3], 31)


def test_randaugment_ops_and_bins_must_pair():
    with pytest.raises(ValueError):
        ops.apply_randaugment(_gradient(1, 8, 8), [1, 2], [3], 31)


# --------------------------------------------------------------------------- erasing


@pytest.mark.parametrize(("h", "w"), SIZES)
def test_erasing_box_inside_image(h, w):
    erased = 0
    for i in range(200):
        top, left, eh, ew = ops.sample_erasing(rng_at(0, 0, i), h, w, 0.5, (0.02, 1 / 3), (0.3, 3.3))
        if (eh, ew) == (0, 0):
            assert (top, left) == (0, 0)
            continue
        erased += 1
        assert 0 < eh < h and 0 < ew < w
        assert 0 <= top and top + eh <= h and 0 <= left and left + ew <= w
    assert 60 < erased <= 120  # about half erased with p = 0.5


def test_erasing_probability_extremes_and_determinism():
    assert all(ops.sample_erasing(rng_at(0, 0, i), 32, 32, 0.0, (0.02, 0.3), (0.3, 3.3)) == (0, 0, 0, 0)
               for i in range(50))
    boxes = [ops.sample_erasing(rng_at(0, 0, i), 32, 32, 1.0, (0.02, 0.3), (0.3, 3.3)) for i in range(50)]
    assert sum(b[2] > 0 for b in boxes) >= 45
    assert boxes == [ops.sample_erasing(rng_at(0, 0, i), 32, 32, 1.0, (0.02, 0.3), (0.3, 3.3)) for i in range(50)]


def test_apply_erasing_zeroes_the_box_only():
    img = ops.to_float(_image(3, 16, 20)).clamp_min(0.01)
    out = ops.apply_erasing(img, (2, 3, 5, 7))
    assert out.dtype == torch.float32 and out.shape == img.shape
    assert (out[:, 2:7, 3:10] == 0).all()
    mask = torch.ones_like(img, dtype=torch.bool)
    mask[:, 2:7, 3:10] = False
    assert torch.equal(out[mask], img[mask])
    assert (img > 0).all()  # the input is not modified in place


@pytest.mark.parametrize("box", [(0, 0, 0, 0), (3, 4, 0, 5), (3, 4, 5, 0)])
def test_apply_erasing_empty_box_is_identity(box):
    img = ops.to_float(_image(1, 12, 12))
    assert torch.equal(ops.apply_erasing(img, box), img)
    assert torch.equal(ops.apply_erasing(img, np.array(box, dtype="<u2")), img)


# --------------------------------------------------------------------------- mixing


def test_mixup_lambda_bounds_and_determinism():
    qs = [ops.sample_mixup(rng_at(0, 1, i), 1.0) for i in range(300)]
    assert all(isinstance(q, int) and 0 <= q <= ops.LAMBDA_SCALE for q in qs)
    assert qs == [ops.sample_mixup(rng_at(0, 1, i), 1.0) for i in range(300)]
    assert 0.4 < np.mean(qs) / ops.LAMBDA_SCALE < 0.6  # Beta(1, 1) has mean 1/2
    small_alpha = [ops.sample_mixup(rng_at(0, 1, i), 0.1) for i in range(300)]
    assert np.mean([min(q, ops.LAMBDA_SCALE - q) for q in small_alpha]) < np.mean(
        [min(q, ops.LAMBDA_SCALE - q) for q in qs])  # small alpha: weights near 0 or 1


def test_apply_mixup():
    a, b = ops.to_float(_image(3, 8, 8, 0)), ops.to_float(_image(3, 8, 8, 1))
    assert torch.equal(ops.apply_mixup(a, b, ops.LAMBDA_SCALE), a)
    assert torch.equal(ops.apply_mixup(a, b, 0), b)
    half = ops.apply_mixup(a, b, 32768)
    lam = 32768 / ops.LAMBDA_SCALE
    torch.testing.assert_close(half, a * lam + b * (1 - lam))
    assert half.dtype == torch.float32 and half.shape == a.shape
    assert torch.equal(half, ops.apply_mixup(a, b, 32768))


@pytest.mark.parametrize(("h", "w"), SIZES)
def test_cutmix_box_inside_and_lambda_matches_area(h, w):
    for i in range(200):
        (y1, x1, y2, x2), q = ops.sample_cutmix(rng_at(0, 1, i), h, w, 1.0)
        assert 0 <= y1 <= y2 <= h and 0 <= x1 <= x2 <= w
        assert 0 <= q <= ops.LAMBDA_SCALE
        kept = 1 - (y2 - y1) * (x2 - x1) / (h * w)
        assert q == round(kept * ops.LAMBDA_SCALE)
        assert ((y1, x1, y2, x2), q) == ops.sample_cutmix(rng_at(0, 1, i), h, w, 1.0)


def test_apply_cutmix_pastes_the_box():
    a, b = ops.to_float(_image(3, 10, 12, 0)), ops.to_float(_image(3, 10, 12, 1))
    out = ops.apply_cutmix(a, b, (2, 3, 6, 9))
    assert out.shape == a.shape and out.dtype == torch.float32
    assert torch.equal(out[:, 2:6, 3:9], b[:, 2:6, 3:9])
    out[:, 2:6, 3:9] = a[:, 2:6, 3:9]
    assert torch.equal(out, a)
    assert torch.equal(ops.apply_cutmix(a, b, (4, 4, 4, 9)), a)  # an empty box keeps the image
    assert not torch.equal(a, ops.apply_cutmix(a, b, (2, 3, 6, 9)))  # input untouched, output differs


# --------------------------------------------------------------------------- to_float


def test_to_float():
    img = torch.tensor([[[0, 51, 255]]], dtype=torch.uint8)
    out = ops.to_float(img)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[[0.0, 0.2, 1.0]]]))
    assert math.isclose(float(out.max()), 1.0) and float(out.min()) == 0.0

"""Corruptions and shifts: identity at severity 0, every one on 8×8 / 28×28 grayscale and RGB ≥ 32
in uint8 and float, determinism under a seed and independence of batching, hand-checked values,
and clear errors (kornia's per-op template: smoke, bad input, determinism, dtype)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as F

from drkit.errors import ConfigError, DataError
from drkit.evaluate import corruptions as C
from drkit.evaluate.corruptions import (
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    SHIFTS,
    corrupt,
    describe,
    severity_levels,
)

ALL = (*CORRUPTIONS, *SHIFTS)
SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 40)]


def _images(shape: tuple[int, int, int], n: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", ALL)
def test_severity_zero_is_the_identity(name, shape):
    x = _images(shape)
    y = corrupt(x, name, 0, seed=3)
    assert torch.equal(y, x) and y.data_ptr() != x.data_ptr()  # an equal copy
    xf = x.float() / 255
    assert torch.equal(corrupt(xf, name, 0), xf)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", ALL)
def test_every_severity_keeps_shape_dtype_and_range(name, shape):
    x = _images(shape)
    for s in range(1, severity_levels(name) + 1):
        y = corrupt(x, name, s, seed=0)
        assert y.shape == x.shape and y.dtype == torch.uint8
    yf = corrupt(x.float() / 255, name, severity_levels(name), seed=0)
    assert yf.dtype == torch.float32 and 0 <= float(yf.min()) and float(yf.max()) <= 1
    assert not torch.equal(y, x)  # the strongest severity changes the images
    single = corrupt(x[0], name, 1, seed=0)
    assert single.shape == x[0].shape
    # uint8 in, uint8 out agrees with float in, rounded (JPEG aside, which is uint8 inside)
    diff = (corrupt(x, name, 2, seed=0).float() / 255 - corrupt(x.float() / 255, name, 2, seed=0)).abs().max()
    assert float(diff) <= 1 / 255 + 1e-6


@pytest.mark.parametrize("name", ALL)
def test_deterministic_under_a_seed_and_independent_of_batching(name):
    x = _images((1, 28, 28), n=5)
    a = corrupt(x, name, 3, seed=7)
    assert torch.equal(a, corrupt(x, name, 3, seed=7))
    # image i gets the same corruption alone (first_index=i) as inside the batch
    for i in (0, 3):
        assert torch.equal(corrupt(x[i:i + 1], name, 3, seed=7, first_index=i), a[i:i + 1])
    assert torch.equal(corrupt(x[[4, 1]], name, 3, seed=7, indices=[4, 1]), a[[4, 1]])  # scattered images
    if name in ("gaussian_noise", "shot_noise", "impulse_noise", "elastic_transform"):  # the random ones
        assert not torch.equal(a, corrupt(x, name, 3, seed=8))


def test_levels_and_descriptions():
    assert severity_levels("rotation") == 12 and severity_levels("translation") == 13
    assert all(severity_levels(n) == 5 for n in CORRUPTIONS)
    assert describe("rotation", 12) == "180°" and describe("rotation", 1) == "15°"
    assert describe("translation", 13) == "26 px at 28 px"
    assert describe("jpeg_compression", 3) == "q=15" and describe("gaussian_noise", 0) == "clean"


def test_shifts_by_hand():
    x = _images((1, 28, 28))
    shifted = torch.zeros_like(x)
    shifted[..., 2:] = x[..., :-2]
    assert torch.equal(corrupt(x, "translation", 1), shifted)  # 2 px right, black fill
    shifted = torch.zeros_like(x)
    shifted[..., 26:] = x[..., :-26]
    assert torch.equal(corrupt(x, "translation", 13), shifted)
    # 180° about the centre maps the pixel grid onto itself: a flip of both axes (bilinear, ±1 rounding)
    assert (corrupt(x, "rotation", 12).int() - x.flip(-1, -2).int()).abs().max() <= 1
    # 8×8: translation 1 is 2/28 of the width = 0.57 px, bilinear: a sub-pixel move, still a change
    x8 = _images((1, 8, 8))
    assert not torch.equal(corrupt(x8, "translation", 1), x8)


def test_intensity_corruptions_by_hand():
    x = torch.tensor([[[[0.0, 0.2], [0.6, 1.0]]]])
    mean = 0.45
    assert torch.allclose(corrupt(x, "contrast", 1), (x - mean) * 0.4 + mean)
    assert torch.allclose(corrupt(x, "brightness", 3), (x + 0.3).clamp(max=1))  # one channel: V = x
    rgb = torch.tensor([0.2, 0.4, 0.0]).view(1, 3, 1, 1)  # V = 0.4 -> 0.5: scaled by 5/4, hue kept
    assert torch.allclose(corrupt(rgb, "brightness", 1), rgb * 1.25)
    black = torch.zeros(1, 3, 1, 1)  # black has no hue: becomes gray V'
    assert torch.allclose(corrupt(black, "brightness", 2), torch.full_like(black, 0.2))
    const = torch.full((1, 1, 8, 8), 0.3)  # a flat image survives blur and pixelation
    for name in ("gaussian_blur", "pixelate"):
        assert torch.allclose(corrupt(const, name, 5), const, atol=1e-6)


def test_noise_statistics():
    x = torch.full((4, 1, 64, 64), 0.5)
    noisy = corrupt(x, "gaussian_noise", 1, seed=0)
    assert float((noisy - x).std()) == pytest.approx(0.08, rel=0.05)
    sp = corrupt(x, "impulse_noise", 5, seed=0)
    hit = (sp != 0.5).float().mean()
    assert float(hit) == pytest.approx(0.27, abs=0.02)
    assert set(sp.unique().tolist()) == {0.0, 0.5, 1.0}
    shot = corrupt(x, "shot_noise", 1, seed=0)
    assert float(shot.mean()) == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("size", [8, 28, 33])
def test_pixelate_is_imagenet_c_pil_box_resize(size):
    from PIL import Image

    x = _images((1, size, size + 3), n=1)
    for s, f in enumerate((0.6, 0.5, 0.4, 0.3, 0.25), start=1):
        small = (int((size + 3) * f), int(size * f))
        ref = Image.fromarray(x[0, 0].numpy()).resize(small, Image.BOX).resize((size + 3, size), Image.BOX)
        ours = corrupt(x, "pixelate", s)[0, 0].int()
        assert (ours - torch.from_numpy(np.array(ref)).int()).abs().max() <= 1  # PIL rounds per axis


def test_pixelate_and_blur_scale_with_the_image():
    x = _images((1, 8, 8), n=1)
    y = corrupt(x, "pixelate", 4)  # int(0.3 * 8) = 2 -> 2×2 blocks of 4×4 pixels
    assert torch.equal(y[..., :4, :4], y[..., :1, :1].expand(-1, -1, 4, 4))
    assert not torch.equal(corrupt(x, "gaussian_blur", 1), x)  # small images keep a visible blur


def test_elastic_is_torchvision_elastic_with_one_field_per_image():
    x = torch.rand(3, 3, 20, 24)
    y = C._elastic(x, 1.5, C._generators(0, "elastic_transform", 3, range(3)))
    ref = []
    for xi, g in zip(x, C._generators(0, "elastic_transform", 3, range(3)), strict=True):
        field = C._blur(torch.randn(2, 20, 24, generator=g)[None], 24 / 8.0)[0]
        field = field / field.pow(2).mean(dim=(-2, -1), keepdim=True).sqrt() * (1.5 * 20 / 32)
        disp = torch.stack([field[0] * 2 / 24, field[1] * 2 / 20], -1)[None]
        ref.append(F.elastic_transform(xi[None], disp)[0])
    assert torch.allclose(y, torch.stack(ref), atol=1e-5)


def test_bad_input_is_a_clear_error():
    x = _images((1, 8, 8))
    with pytest.raises(ConfigError, match="unknown corruption"):
        corrupt(x, "fog_of_war", 1)
    with pytest.raises(ConfigError, match="0..5"):
        corrupt(x, "contrast", 6)
    with pytest.raises(ConfigError, match="0..12"):
        corrupt(x, "rotation", -1)
    with pytest.raises(DataError, match="uint8 or float"):
        corrupt(x.int(), "contrast", 1)
    with pytest.raises(DataError, match="tensor"):
        corrupt(x[0, 0], "contrast", 1)
    with pytest.raises(ConfigError, match="imagecorruptions"):
        corrupt(x, EXTRA_CORRUPTIONS[0], 1)
    with pytest.raises(ConfigError, match="backend"):
        corrupt(x, "contrast", 1, backend="opencv")
    with pytest.raises(ConfigError, match="one non-negative dataset index per image"):
        corrupt(x, "gaussian_noise", 1, indices=[0])


def test_imagecorruptions_backend():
    pytest.importorskip("imagecorruptions")
    with pytest.raises(ConfigError, match="at least 32"):
        corrupt(_images((3, 16, 16)), "gaussian_noise", 1, backend="imagecorruptions")
    with pytest.raises(ConfigError, match="RGB"):
        corrupt(_images((1, 32, 32)), "gaussian_noise", 1, backend="imagecorruptions")
    x = _images((3, 32, 40), n=2)
    state = np.random.get_state()[1].copy()
    for name in ("gaussian_noise", "impulse_noise", "motion_blur"):
        a = corrupt(x, name, 3, seed=1, backend="imagecorruptions")
        assert a.shape == x.shape and a.dtype == torch.uint8 and not torch.equal(a, x)
        assert torch.equal(a, corrupt(x, name, 3, seed=1, backend="imagecorruptions"))
        assert torch.equal(a[1:], corrupt(x[1:], name, 3, seed=1, first_index=1, backend="imagecorruptions"))
    assert np.array_equal(np.random.get_state()[1], state)  # numpy's global state is restored

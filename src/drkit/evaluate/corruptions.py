"""Corruptions and shifts generated on the fly: pure batched tensor functions.

``corrupt(images, name, severity, seed=...)`` returns a corrupted copy of a batch ``(B, C, H, W)``
(or one image ``(C, H, W)``), ``uint8`` or float in ``[0, 1]``, of the same dtype and shape. Any
size and channel count works — the 8×8 and 28×28 grayscale digits as well as RGB photos — because
spatial parameters are given for a 32-px image and scaled with the image side (blur only above
32 px: a narrower blur would leave a small image unchanged), and intensity parameters act on
``[0, 1]`` pixels whatever the size.

- Severity 0 is the identity (an unchanged copy); corruptions have severities 1..5, shifts more.
- Randomness comes from one ``torch.Generator`` per image, seeded by (``seed``, corruption,
  severity, dataset index ``first_index + b``): the same image gets the same corruption whatever
  the batch it is in.

Corruptions (:data:`CORRUPTIONS`; values of severities 1..5 from Hendrycks & Dietterich's
ImageNet-C / CIFAR-10-C code, ICLR 2019):

=================== ============================================== ==========================
name                what                                           severities 1..5
=================== ============================================== ==========================
gaussian_noise      ``x + N(0, σ²)``                               σ = .08 .12 .18 .26 .38
shot_noise          ``Poisson(λx) / λ``                            λ = 60 25 12 5 3
impulse_noise       a fraction of values set to 0 or 1 (s&p)       .03 .06 .09 .17 .27
gaussian_blur       Gaussian blur, σ in px (≤ 32 px; scaled above) .4 .6 .7 .8 1
contrast            ``(x - mean_c) · f + mean_c``                  f = .4 .3 .2 .1 .05
brightness          HSV value + v (clipped), hue/saturation kept   v = .1 .2 .3 .4 .5
pixelate            BOX-resize to f of the side and back           f = .6 .5 .4 .3 .25
jpeg_compression    JPEG at quality q (torchvision)                q = 25 18 15 10 7
elastic_transform   smooth random displacement (RMS px at 32 px)   .5 1 1.5 2 2.5
=================== ============================================== ==========================

Shifts (:data:`SHIFTS`; Ovadia et al., "Can you trust your model's uncertainty?", NeurIPS 2019):
``rotation`` by 15°·s (s = 1..12, up to 180°) and ``translation`` to the right by 2·s px at 28 px
(s = 1..13, up to 26 px, scaled with the width), both bilinear with black fill.

With ``backend="imagecorruptions"`` (``pip install drkit[corruptions]``, RGB images of at least
32 px) the corruptions come from the maintained ``imagecorruptions-imaug`` package instead,
which also offers the weather and other blur corruptions (:data:`EXTRA_CORRUPTIONS`); numpy's
global random state is seeded per image and restored afterwards.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torchvision.transforms.v2.functional as F
from torch.nn.functional import grid_sample

from ..errors import ConfigError, DataError

__all__ = ["CORRUPTIONS", "SHIFTS", "EXTRA_CORRUPTIONS", "BACKENDS", "corrupt", "severity_levels", "describe"]

_REF = 32.0  # side length the spatial parameters are given for

_PARAMS: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
    "shot_noise": (60, 25, 12, 5, 3),
    "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),
    "jpeg_compression": (25, 18, 15, 10, 7),
    "elastic_transform": (0.5, 1.0, 1.5, 2.0, 2.5),
}
CORRUPTIONS: tuple[str, ...] = tuple(_PARAMS)
SHIFTS: dict[str, int] = {"rotation": 12, "translation": 13}  # name -> number of severities
EXTRA_CORRUPTIONS: tuple[str, ...] = (
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "snow", "frost", "fog",
    "speckle_noise", "spatter", "saturate",
)  # fmt: skip
BACKENDS = ("torch", "imagecorruptions")
_ROTATION_STEP = 15.0  # degrees per severity
_TRANSLATION_STEP = 2.0 / 28.0  # fraction of the width per severity (2 px at 28 px)


def severity_levels(name: str) -> int:
    """Number of severities of ``name`` (severity 0, the identity, not counted)."""
    if name in SHIFTS:
        return SHIFTS[name]
    if name in _PARAMS or name in EXTRA_CORRUPTIONS:
        return 5
    raise ConfigError(f"unknown corruption {name!r}; choose one of {', '.join((*CORRUPTIONS, *SHIFTS))}")


def describe(name: str, severity: int) -> str:
    """The parameter behind ``severity`` of ``name`` in words, e.g. ``"45°"`` or ``"q=15"``."""
    severity_levels(name)
    if severity == 0:
        return "clean"
    if name == "rotation":
        return f"{_ROTATION_STEP * severity:g}°"
    if name == "translation":
        return f"{2 * severity} px at 28 px"
    if name not in _PARAMS:
        return f"severity {severity}"
    symbol = {"gaussian_noise": "σ", "shot_noise": "λ", "impulse_noise": "p", "gaussian_blur": "σ(px)",
              "contrast": "f", "brightness": "v", "pixelate": "f", "jpeg_compression": "q",
              "elastic_transform": "rms@32px"}[name]
    return f"{symbol}={_PARAMS[name][severity - 1]:g}"


# ----------------------------------------------------------------------------- randomness


def _generators(seed: int, name: str, severity: int, indices: Sequence[int]) -> list[torch.Generator]:
    """One generator per image, keyed by (seed, corruption, severity, dataset index)."""
    key = zlib.crc32(name.encode())
    out = []
    for i in indices:
        state = np.random.SeedSequence([seed, key, severity, i]).generate_state(2, np.uint32)
        out.append(torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1))
    return out


def _per_image(gens: list[torch.Generator], draw: Callable[[torch.Generator], torch.Tensor]) -> torch.Tensor:
    return torch.stack([draw(g) for g in gens])


# ----------------------------------------------------------------------------- corruptions
# Each takes float images (B, C, H, W) in [0, 1], the severity's parameter and the per-image
# generators, and returns float images (clipping happens once, in ``corrupt``).


def _gaussian_noise(x: torch.Tensor, sigma: float, gens: list[torch.Generator]) -> torch.Tensor:
    return x + sigma * _per_image(gens, lambda g: torch.randn(x.shape[1:], generator=g))


def _shot_noise(x: torch.Tensor, lam: float, gens: list[torch.Generator]) -> torch.Tensor:
    return torch.stack([torch.poisson(xi * lam, generator=g) for xi, g in zip(x, gens, strict=True)]) / lam


def _impulse_noise(x: torch.Tensor, amount: float, gens: list[torch.Generator]) -> torch.Tensor:
    # scikit-image's 's&p' mode (what ImageNet-C uses): each value is replaced with probability
    # `amount`, by 1 (salt) or 0 (pepper) with equal odds
    u = _per_image(gens, lambda g: torch.rand((2, *x.shape[1:]), generator=g))
    hit, salt = u[:, 0] < amount, u[:, 1] < 0.5
    return torch.where(hit, salt.to(x.dtype), x)


def _odd_kernel(sigma: float, side: int) -> int:
    k = 2 * math.ceil(3 * sigma) + 1
    return max(3, min(k, 2 * side - 1))  # reflect padding needs k // 2 < side


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    h, w = x.shape[-2:]
    return F.gaussian_blur(x, [_odd_kernel(sigma, w), _odd_kernel(sigma, h)], [sigma, sigma])


def _gaussian_blur(x: torch.Tensor, sigma32: float, gens: list[torch.Generator]) -> torch.Tensor:
    # a blur narrower than ~0.4 px changes nothing once rounded, so small images keep the pixel
    # value: the digits' 8×8 pixels are the smallest detail they have
    return _blur(x, sigma32 * max(min(x.shape[-2:]), _REF) / _REF)


def _contrast(x: torch.Tensor, factor: float, gens: list[torch.Generator]) -> torch.Tensor:
    mean = x.mean(dim=(-2, -1), keepdim=True)
    return (x - mean) * factor + mean


def _brightness(x: torch.Tensor, shift: float, gens: list[torch.Generator]) -> torch.Tensor:
    # HSV value V = max over channels; adding to V at fixed hue and saturation scales the pixel
    # by V'/V (a black pixel, whose saturation is 0, becomes gray V'). One channel: x + shift.
    v = x.amax(dim=1, keepdim=True)
    v_new = (v + shift).clamp(max=1.0)
    return torch.where(v > 0, x * v_new / v.clamp(min=1e-12), v_new.expand_as(x))


def _box_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """``(n_out, n_in)`` weights of PIL's BOX resampling along one axis (what ImageNet-C's pixelate
    uses): output pixel ``o`` averages the input pixels whose centres fall in its footprint
    ``((o + 1/2) s ± max(s, 1) / 2]``, ``s = n_in / n_out`` — when enlarging, the nearest one."""
    scale = n_in / n_out
    fs = max(scale, 1.0)
    center = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * scale)[:, None]
    i = torch.arange(n_in, dtype=torch.float64)[None, :]
    t = (i - center + 0.5) * (1.0 / fs)  # Pillow's precompute_coeffs, float64 like its C code
    window = (i >= torch.floor(center - 0.5 * fs + 0.5)) & (i < torch.floor(center + 0.5 * fs + 0.5))
    w = ((t > -0.5) & (t <= 0.5) & window).double()
    return (w / w.sum(1, keepdim=True)).float()


def _pixelate(x: torch.Tensor, fraction: float, gens: list[torch.Generator]) -> torch.Tensor:
    # ImageNet-C: BOX-resize to `fraction` of the size and back (PIL's BOX filter as one matrix per
    # axis, applied in float: PIL itself rounds to uint8 after each axis)
    h, w = x.shape[-2:]
    sh, sw = max(1, int(h * fraction)), max(1, int(w * fraction))  # int(), as ImageNet-C
    down_h, down_w, up_h, up_w = _box_matrix(h, sh), _box_matrix(w, sw).T, _box_matrix(sh, h), _box_matrix(sw, w).T
    # one image at a time: the same matmul shapes whatever the batch, so the same bits
    return torch.stack([up_h @ (down_h @ xi @ down_w) @ up_w for xi in x])


def _jpeg(x: torch.Tensor, quality: float, gens: list[torch.Generator]) -> torch.Tensor:
    if x.shape[1] not in (1, 3):
        raise DataError(f"jpeg_compression needs 1 or 3 channels, got {x.shape[1]}")
    if not hasattr(F, "jpeg"):
        raise ConfigError("jpeg_compression needs torchvision >= 0.20 (its v2 jpeg op); upgrade torchvision")
    return F.jpeg(_to_uint8(x), int(quality)).float() / 255.0


def _elastic(x: torch.Tensor, rms32: float, gens: list[torch.Generator]) -> torch.Tensor:
    # a white-noise displacement field smoothed over 1/8 of the image, rescaled to the wanted RMS
    # displacement in pixels; then torchvision's elastic_transform (identity grid + displacement
    # in [-1, 1] units, bilinear, zero fill), batched with one field per image
    b, _, h, w = x.shape
    rms = rms32 * min(h, w) / _REF
    field = _blur(_per_image(gens, lambda g: torch.randn(2, h, w, generator=g)), max(h, w) / 8.0)
    field = field / field.pow(2).mean(dim=(-2, -1), keepdim=True).sqrt().clamp(min=1e-12) * rms
    scale = torch.tensor([2.0 / w, 2.0 / h]).view(1, 2, 1, 1)
    disp = (field * scale).permute(0, 2, 3, 1)  # (B, H, W, 2), x then y
    xs = torch.linspace((1 - w) / w, (w - 1) / w, w)
    ys = torch.linspace((1 - h) / h, (h - 1) / h, h)
    identity = torch.stack([xs.expand(h, w), ys[:, None].expand(h, w)], dim=-1)[None]
    return grid_sample(x, identity + disp, mode="bilinear", padding_mode="zeros", align_corners=False)


_OPS: dict[str, Callable[[torch.Tensor, float, list[torch.Generator]], torch.Tensor]] = {
    "gaussian_noise": _gaussian_noise,
    "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise,
    "gaussian_blur": _gaussian_blur,
    "contrast": _contrast,
    "brightness": _brightness,
    "pixelate": _pixelate,
    "jpeg_compression": _jpeg,
    "elastic_transform": _elastic,
}


def _shift(x: torch.Tensor, name: str, severity: int) -> torch.Tensor:
    bilinear = F.InterpolationMode.BILINEAR
    if name == "rotation":
        return F.rotate(x, _ROTATION_STEP * severity, interpolation=bilinear, fill=0.0)
    dx = _TRANSLATION_STEP * severity * x.shape[-1]
    return F.affine(x, angle=0.0, translate=[dx, 0.0], scale=1.0, shear=[0.0, 0.0], interpolation=bilinear,
                    fill=0.0)


def _imagecorruptions(x: torch.Tensor, name: str, severity: int, seed: int, indices: Sequence[int]) -> torch.Tensor:
    try:
        from imagecorruptions import corrupt as ic_corrupt  # the optional corruptions extra
    except ImportError as e:
        raise ConfigError("backend 'imagecorruptions' needs `pip install drkit[corruptions]` "
                          "(imagecorruptions-imaug); or use backend='torch'") from e
    b, c, h, w = x.shape
    if c != 3 or min(h, w) < 32:
        raise ConfigError(f"imagecorruptions works on RGB images of at least 32×32, got {c}×{h}×{w}; "
                          "use backend='torch' for small or grayscale images")
    key = zlib.crc32(name.encode())
    saved = np.random.get_state()
    out = []
    try:
        for i, img in zip(indices, _to_uint8(x).permute(0, 2, 3, 1).numpy(), strict=True):
            s = int(np.random.SeedSequence([seed, key, severity, int(i)]).generate_state(1)[0])
            np.random.seed(s)
            kwargs = {"seed": s} if name in ("impulse_noise", "glass_blur") else {}
            out.append(torch.from_numpy(np.ascontiguousarray(ic_corrupt(img, severity, name, **kwargs))))
    finally:
        np.random.set_state(saved)
    return torch.stack(out).permute(0, 3, 1, 2).float() / 255.0


# ----------------------------------------------------------------------------- entry point


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def corrupt(images: torch.Tensor, name: str, severity: int, *, seed: int = 0, first_index: int = 0,
            indices: Sequence[int] | None = None, backend: str = "torch") -> torch.Tensor:
    """A corrupted copy of ``images`` (the module docstring lists names and severities).

    Args:
        images: ``(B, C, H, W)`` or ``(C, H, W)``, ``uint8`` or float in ``[0, 1]``.
        name: one of :data:`CORRUPTIONS`, :data:`SHIFTS` (or :data:`EXTRA_CORRUPTIONS` with the
            ``imagecorruptions`` backend).
        severity: 0 (identity) .. :func:`severity_levels` ``(name)``.
        seed: seed of the random corruptions.
        first_index: dataset index of ``images[0]``; image ``b`` draws from the stream of index
            ``first_index + b``, so results do not depend on how a dataset is cut into batches.
        indices: the dataset index of each image instead (for a batch of scattered images).
        backend: ``"torch"`` (default; any size) or ``"imagecorruptions"`` (RGB ≥ 32 px).

    Returns:
        The corrupted images, same shape and dtype (``uint8`` results are rounded).

    Example:
        >>> x = torch.zeros(2, 1, 8, 8, dtype=torch.uint8)
        >>> corrupt(x, "gaussian_noise", 3, seed=0).shape
        torch.Size([2, 1, 8, 8])
        >>> torch.equal(corrupt(x, "rotation", 0), x)
        True
    """
    levels = severity_levels(name)
    if backend not in BACKENDS:
        raise ConfigError(f"unknown corruption backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if name in EXTRA_CORRUPTIONS and backend != "imagecorruptions":
        raise ConfigError(f"{name!r} exists only with backend='imagecorruptions' (RGB images ≥ 32 px)")
    if not isinstance(severity, (int, np.integer)) or not 0 <= severity <= levels:
        raise ConfigError(f"severity of {name!r} must be an integer in 0..{levels}, got {severity!r}")
    if seed < 0 or first_index < 0:
        raise ConfigError(f"seed and first_index must be >= 0, got {seed} and {first_index}")
    if not isinstance(images, torch.Tensor) or images.ndim not in (3, 4):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise DataError(f"corrupt expects a tensor (B, C, H, W) or (C, H, W), got {shape}")
    is_uint8 = images.dtype == torch.uint8
    if not is_uint8 and not images.dtype.is_floating_point:
        raise DataError(f"corrupt expects uint8 or float images in [0, 1], got {images.dtype}")
    if severity == 0:
        return images.clone()
    single = images.ndim == 3
    x = images[None] if single else images
    if indices is None:
        indices = range(first_index, first_index + len(x))
    elif len(indices) != len(x) or min(indices, default=0) < 0:
        raise ConfigError(f"indices must give one non-negative dataset index per image ({len(x)}), got {len(indices)}")
    x = x.float() / 255.0 if is_uint8 else x.float()
    if name in SHIFTS:
        y = _shift(x, name, int(severity))
    elif backend == "imagecorruptions":
        y = _imagecorruptions(x, name, int(severity), seed, indices)
    else:
        gens = _generators(seed, name, int(severity), indices)
        y = _OPS[name](x, _PARAMS[name][severity - 1], gens)
    y = y.clamp(0.0, 1.0)
    y = _to_uint8(y) if is_uint8 else y.to(images.dtype)
    return y[0] if single else y

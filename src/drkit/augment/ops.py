"""Parametrized augmentation ops: each one *samples explicit parameters* and *applies given ones*.

Dataset reinforcement (Faghri et al., ICCV 2023, §3) stores augmentation parameters instead of
augmented images, so every op is split in two pure functions:

- ``sample_<op>(rng, ...)`` draws the parameters from a counter-based generator
  (:func:`drkit.augment.rng.rng_at`) and returns small integers wherever exact replay allows;
- ``apply_<op>(image, ...)`` is a deterministic function of the image and those parameters, built
  on torchvision's v2 functional kernels.

Images are ``uint8`` tensors of shape ``(C, H, W)`` until :func:`to_float` (values in ``[0, 1]``);
erasing and mixing act on float images. Sampling follows torchvision's own algorithms
(RandomResizedCrop, RandAugment, RandomErasing, MixUp/CutMix) with our generator in place of the
global one.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchvision.transforms.v2 import functional as F

__all__ = [
    "RANDAUGMENT_OPS",
    "sample_resized_crop",
    "apply_resized_crop",
    "sample_flip",
    "apply_flip",
    "sample_randaugment",
    "apply_randaugment",
    "sample_erasing",
    "apply_erasing",
    "sample_mixup",
    "apply_mixup",
    "sample_cutmix",
    "apply_cutmix",
    "to_float",
]

# --------------------------------------------------------------------------- crop and flip


def sample_resized_crop(
    rng: np.random.Generator,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
) -> tuple[int, int, int, int]:
    """Crop box ``(top, left, h, w)`` as torchvision's ``RandomResizedCrop.get_params`` draws it."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    # Fallback: the largest central crop within the ratio range.
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def apply_resized_crop(
    image: torch.Tensor, box: tuple[int, int, int, int], size: tuple[int, int]
) -> torch.Tensor:
    """Crop ``box = (top, left, h, w)`` and resize to ``size = (H, W)`` (bilinear, antialiased)."""
    top, left, h, w = (int(v) for v in box)
    return F.resized_crop(image, top, left, h, w, list(size), antialias=True)


def sample_flip(rng: np.random.Generator, p: float) -> bool:
    """Whether to flip horizontally, with probability ``p``."""
    return bool(rng.random() < p)


def apply_flip(image: torch.Tensor, flip: bool) -> torch.Tensor:
    return F.horizontal_flip(image) if flip else image


# --------------------------------------------------------------------------- RandAugment

# Op id -> name. Ids are stored in shards: append new ops, never reorder.
RANDAUGMENT_OPS: tuple[str, ...] = (
    "Identity",
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
    "Rotate",
    "Brightness",
    "Color",
    "Contrast",
    "Sharpness",
    "Posterize",
    "Solarize",
    "AutoContrast",
    "Equalize",
)
_SIGNED = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast", "Sharpness"}


def sample_randaugment(
    rng: np.random.Generator,
    num_ops: int,
    magnitude: int,
    num_bins: int,
    magnitude_std: float = 0.0,
) -> tuple[list[int], list[int]]:
    """``num_ops`` (op id, signed magnitude bin) pairs, as torchvision's RandAugment chooses them.

    With ``magnitude_std > 0`` the bin is drawn from N(magnitude, std) and clipped (timm's "mstd").
    The sign of the bin is the sign of the op's magnitude for signed ops (50 % each way).
    """
    ops, bins = [], []
    for _ in range(num_ops):
        op = int(rng.integers(0, len(RANDAUGMENT_OPS)))
        m = magnitude
        if magnitude_std > 0:
            m = int(round(min(max(rng.normal(magnitude, magnitude_std), 0), num_bins - 1)))
        if RANDAUGMENT_OPS[op] in _SIGNED and rng.random() < 0.5:
            m = -m
        ops.append(op)
        bins.append(m)
    return ops, bins


def _apply_ra_op(image: torch.Tensor, op: int, signed_bin: int, num_bins: int) -> torch.Tensor:
    if not 0 <= op < len(RANDAUGMENT_OPS):  # a negative id must not index from the end
        raise ValueError(f"unknown RandAugment op id {op} (known: 0..{len(RANDAUGMENT_OPS) - 1})")
    name = RANDAUGMENT_OPS[op]
    _, height, width = image.shape
    sign = -1.0 if signed_bin < 0 else 1.0
    frac = abs(signed_bin) / (num_bins - 1)  # position of the bin in [0, 1]
    fill = [0.0] * image.shape[0]
    nearest = F.InterpolationMode.NEAREST
    if name == "Identity":
        return image
    if name in ("ShearX", "ShearY"):
        shear = math.degrees(math.atan(sign * 0.3 * frac))
        xy = [shear, 0.0] if name == "ShearX" else [0.0, shear]
        return F.affine(image, angle=0.0, translate=[0, 0], scale=1.0, shear=xy,
                        interpolation=nearest, fill=fill, center=[0, 0])
    if name in ("TranslateX", "TranslateY"):
        extent = width if name == "TranslateX" else height
        shift = int(sign * 150.0 / 331.0 * extent * frac)
        xy = [shift, 0] if name == "TranslateX" else [0, shift]
        return F.affine(image, angle=0.0, translate=xy, scale=1.0, shear=[0.0, 0.0],
                        interpolation=nearest, fill=fill)
    if name == "Rotate":
        return F.rotate(image, angle=sign * 30.0 * frac, interpolation=nearest, fill=fill)
    factor = 1.0 + sign * 0.9 * frac
    if name == "Brightness":
        return F.adjust_brightness(image, factor)
    if name == "Color":
        return F.adjust_saturation(image, factor)
    if name == "Contrast":
        return F.adjust_contrast(image, factor)
    if name == "Sharpness":
        return F.adjust_sharpness(image, factor)
    if name == "Posterize":
        return F.posterize(image, bits=int(8 - round(abs(signed_bin) / ((num_bins - 1) / 4))))
    if name == "Solarize":
        return F.solarize(image, threshold=255.0 * (1.0 - frac))
    if name == "AutoContrast":
        return F.autocontrast(image)
    if name == "Equalize":
        return F.equalize(image)
    raise ValueError(f"unknown RandAugment op id {op}")


def apply_randaugment(
    image: torch.Tensor, ops: np.ndarray | list[int], bins: np.ndarray | list[int], num_bins: int
) -> torch.Tensor:
    """Apply the RandAugment ops in order (``uint8`` image)."""
    for op, b in zip(ops, bins, strict=True):
        image = _apply_ra_op(image, int(op), int(b), num_bins)
    return image


# --------------------------------------------------------------------------- erasing


def sample_erasing(
    rng: np.random.Generator,
    height: int,
    width: int,
    p: float,
    scale: tuple[float, float],
    ratio: tuple[float, float],
) -> tuple[int, int, int, int]:
    """Erased box ``(top, left, h, w)``; ``(0, 0, 0, 0)`` means nothing is erased."""
    if rng.random() >= p:
        return 0, 0, 0, 0
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        erase_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        h = int(round(math.sqrt(erase_area * aspect)))
        w = int(round(math.sqrt(erase_area / aspect)))
        if 0 < h < height and 0 < w < width:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    return 0, 0, 0, 0


def apply_erasing(image: torch.Tensor, box: tuple[int, int, int, int] | np.ndarray) -> torch.Tensor:
    """Set the box to 0 (float image). An empty box leaves the image as it is."""
    top, left, h, w = (int(v) for v in box)
    if h == 0 or w == 0:
        return image
    out = image.clone()
    out[:, top : top + h, left : left + w] = 0
    return out


# --------------------------------------------------------------------------- mixing

LAMBDA_SCALE = 65535  # mixing weights are stored as uint16: lam = q / LAMBDA_SCALE


def sample_mixup(rng: np.random.Generator, alpha: float) -> int:
    """Quantized MixUp weight ``q`` (the image keeps ``q / 65535`` of itself)."""
    return int(round(rng.beta(alpha, alpha) * LAMBDA_SCALE))


def apply_mixup(image: torch.Tensor, partner: torch.Tensor, lam_q: int, *, inplace: bool = False) -> torch.Tensor:
    """``image * lam + partner * (1 - lam)``; ``inplace`` writes both products into the inputs (the
    same float operations in the same order, so the same bits) and returns ``image``."""
    lam = float(lam_q) / LAMBDA_SCALE
    if inplace:
        return image.mul_(lam).add_(partner.mul_(1.0 - lam))
    return image * lam + partner * (1.0 - lam)


def sample_cutmix(
    rng: np.random.Generator, height: int, width: int, alpha: float
) -> tuple[tuple[int, int, int, int], int]:
    """CutMix box ``(y1, x1, y2, x2)`` pasted from the partner, and the quantized weight left to
    the image (``1 - box area / image area``), as torchvision's ``CutMix`` draws them."""
    lam = rng.beta(alpha, alpha)
    cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
    r = 0.5 * math.sqrt(1.0 - lam)
    half_w, half_h = int(r * width), int(r * height)
    y1, x1 = max(cy - half_h, 0), max(cx - half_w, 0)
    y2, x2 = min(cy + half_h, height), min(cx + half_w, width)
    kept = 1.0 - (y2 - y1) * (x2 - x1) / (height * width)
    return (y1, x1, y2, x2), int(round(kept * LAMBDA_SCALE))


def apply_cutmix(
    image: torch.Tensor, partner: torch.Tensor, box: tuple[int, int, int, int] | np.ndarray, *, inplace: bool = False
) -> torch.Tensor:
    """``image`` with the box pasted from ``partner`` (into ``image`` itself when ``inplace``)."""
    y1, x1, y2, x2 = (int(v) for v in box)
    out = image if inplace else image.clone()
    out[:, y1:y2, x1:x2] = partner[:, y1:y2, x1:x2]
    return out


def to_float(image: torch.Tensor) -> torch.Tensor:
    """``uint8`` image to ``float32`` in ``[0, 1]``."""
    return F.to_dtype(image, torch.float32, scale=True)

"""Augmentation policies: the four of the paper, as fixed-width parameter records.

A policy turns (seed, sample index, augmentation index) into a parameter record — a numpy
structured scalar of a fixed dtype — and replays a record onto an image. The record is what a
store keeps per (sample, augmentation); its dtype is written into the store's manifest.

Policies (Faghri et al., ICCV 2023, §4; the default is their recommendation):

- ``cropflip``: RandomResizedCrop + horizontal flip.                      record: 9 bytes
- ``randaugment``: cropflip + RandAugment + RandomErasing (p=0.25).       record: 21 bytes
- ``mixing``: cropflip + MixUp or CutMix with a partner sample.           record: 26 bytes
- ``randaugment+mixing``: both.                                           record: 38 bytes

A mixing record stores the partner's (sample, augmentation) coordinates, not the partner's own
parameters: those are the base part of the partner's own record, which is in the same store (and
at reinforcement time is re-derived from the same pure function), so replay stays exact while a
record stays small.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from . import ops
from .rng import STREAM_BASE, STREAM_MIX, rng_at

__all__ = ["POLICIES", "DEFAULT_POLICY", "PolicyConfig", "Policy"]

POLICIES = ("cropflip", "randaugment", "mixing", "randaugment+mixing")
DEFAULT_POLICY = "randaugment"
_SMALL_IMAGE = 64  # below this side length the default crop scale is gentler


def _pair(value: Any, name: str) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if not 0 < lo <= hi:
        raise ConfigError(f"{name} must be a range 0 < low <= high, got {value}")
    return lo, hi


@dataclass(frozen=True)
class PolicyConfig:
    """How to augment. ``None`` fields are resolved from the image size by :class:`Policy`."""

    name: str = DEFAULT_POLICY  # one of POLICIES
    size: tuple[int, int] | None = None  # output (H, W); None: the source image size
    scale: tuple[float, float] | None = None  # crop area range; None: (0.08, 1) or (0.35, 1) below 64 px
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # crop aspect-ratio range
    flip_p: float = 0.5  # probability of a horizontal flip
    ra_num_ops: int = 2  # RandAugment ops per image
    ra_magnitude: int = 9  # RandAugment magnitude bin (0 .. ra_num_bins-1)
    ra_magnitude_std: float = 0.5  # spread of the magnitude bin (timm's "mstd"); 0: fixed
    ra_num_bins: int = 31
    erase_p: float = 0.25  # RandomErasing probability
    erase_scale: tuple[float, float] = (0.02, 1 / 3)
    erase_ratio: tuple[float, float] = (0.3, 3.3)
    mix_alpha: float = 1.0  # Beta(alpha, alpha) for MixUp/CutMix weights
    cutmix_p: float = 0.5  # probability of CutMix (else MixUp) in mixing policies

    def __post_init__(self) -> None:
        if self.name not in POLICIES:
            raise ConfigError(f"unknown policy {self.name!r}; choose one of {', '.join(POLICIES)}")
        if self.size is not None:
            h, w = (int(v) for v in self.size)
            if not (0 < h < 65536 and 0 < w < 65536):
                raise ConfigError(f"size must be two positive integers below 65536, got {self.size}")
            object.__setattr__(self, "size", (h, w))
        if self.scale is not None:
            lo, hi = _pair(self.scale, "scale")
            if hi > 1:
                raise ConfigError(f"scale is a fraction of the image area (<= 1), got {self.scale}")
            object.__setattr__(self, "scale", (lo, hi))
        object.__setattr__(self, "ratio", _pair(self.ratio, "ratio"))
        object.__setattr__(self, "erase_scale", _pair(self.erase_scale, "erase_scale"))
        object.__setattr__(self, "erase_ratio", _pair(self.erase_ratio, "erase_ratio"))
        for name in ("flip_p", "erase_p", "cutmix_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")
        if not 1 <= self.ra_num_ops <= 8:
            raise ConfigError(f"ra_num_ops must be in 1..8, got {self.ra_num_ops}")
        if not 2 <= self.ra_num_bins <= 128 or not 0 <= self.ra_magnitude < self.ra_num_bins:
            raise ConfigError(
                f"ra_magnitude must be in 0..ra_num_bins-1 (ra_num_bins in 2..128), "
                f"got {self.ra_magnitude} of {self.ra_num_bins}"
            )
        if self.mix_alpha <= 0 or self.ra_magnitude_std < 0:
            raise ConfigError("mix_alpha must be > 0 and ra_magnitude_std >= 0")

    @property
    def uses_randaugment(self) -> bool:
        return self.name.startswith("randaugment")

    @property
    def uses_mixing(self) -> bool:
        return self.name.endswith("mixing")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PolicyConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ConfigError(f"unknown policy settings {sorted(unknown)}: written by a newer drkit?")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


class Policy:
    """A :class:`PolicyConfig` resolved for images of shape ``(C, H, W)``.

    Example:
        >>> policy = Policy(PolicyConfig("cropflip"), (1, 28, 28))
        >>> params = policy.sample(seed=0, index=3, aug=1, num_samples=100, num_augs=4)
        >>> image = torch.zeros(1, 28, 28, dtype=torch.uint8)
        >>> policy.apply(image, params).shape
        torch.Size([1, 28, 28])
    """

    def __init__(self, config: PolicyConfig | str, image_shape: tuple[int, int, int]) -> None:
        if isinstance(config, str):
            config = PolicyConfig(config)
        c, h, w = (int(v) for v in image_shape)
        if min(c, h, w) <= 0 or max(h, w) >= 65536:
            raise ConfigError(f"image shape must be (C, H, W) with sides below 65536, got {image_shape}")
        size = config.size or (h, w)
        scale = config.scale or ((0.08, 1.0) if min(h, w) >= _SMALL_IMAGE else (0.35, 1.0))
        self.config = dataclasses.replace(config, size=size, scale=scale)
        self.image_shape = (c, h, w)
        self.size: tuple[int, int] = size
        fields: list[tuple[Any, ...]] = [("crop", "<u2", (4,)), ("flip", "u1")]
        if self.config.uses_randaugment:
            n = self.config.ra_num_ops
            fields += [("ra_op", "u1", (n,)), ("ra_mag", "i1", (n,)), ("erase", "<u2", (4,))]
        self._base_names = tuple(f[0] for f in fields)
        if self.config.uses_mixing:
            fields += [
                ("partner", "<u4"),  # partner sample index
                ("partner_aug", "<u2"),  # partner's augmentation index (its base params are in its record)
                ("mix_mode", "u1"),  # 0: MixUp, 1: CutMix
                ("mix_lam", "<u2"),  # weight kept by this sample, times 65535
                ("mix_box", "<u2", (4,)),  # CutMix box (y1, x1, y2, x2); zeros for MixUp
            ]
        self.param_dtype = np.dtype(fields)

    def __repr__(self) -> str:
        return f"Policy({self.config.name!r}, image_shape={self.image_shape}, size={self.size})"

    def describe(self) -> dict[str, Any]:
        """The resolved configuration, as written into a store's manifest."""
        return self.config.to_dict()

    # ------------------------------------------------------------------ sampling

    def sample_base(self, seed: int, index: int, aug: int, out: np.ndarray | None = None, *,
                    image_hw: tuple[int, int] | None = None) -> np.ndarray:
        """The crop/flip/RandAugment/erasing part of the record of (index, aug).

        ``image_hw`` is the height and width of this sample's image when the dataset's images differ
        in size (an image folder): the crop box is drawn inside it. Default: the policy's image shape.
        """
        cfg = self.config
        h, w = (int(v) for v in image_hw) if image_hw is not None else self.image_shape[1:]
        rec = np.zeros((), self.param_dtype) if out is None else out
        rng = rng_at(seed, STREAM_BASE, index, aug)
        rec["crop"] = ops.sample_resized_crop(rng, h, w, cfg.scale, cfg.ratio)
        rec["flip"] = ops.sample_flip(rng, cfg.flip_p)
        if cfg.uses_randaugment:
            op_ids, bins = ops.sample_randaugment(
                rng, cfg.ra_num_ops, cfg.ra_magnitude, cfg.ra_num_bins, cfg.ra_magnitude_std
            )
            rec["ra_op"], rec["ra_mag"] = op_ids, bins
            rec["erase"] = ops.sample_erasing(rng, *self.size, cfg.erase_p, cfg.erase_scale, cfg.erase_ratio)
        return rec

    def sample(self, seed: int, index: int, aug: int, *, num_samples: int, num_augs: int,
               image_hw: tuple[int, int] | None = None) -> np.ndarray:
        """The full parameter record of augmentation ``aug`` of sample ``index``: a pure function
        of its arguments (``num_samples``/``num_augs`` bound the mixing partner's coordinates;
        ``image_hw`` as in :meth:`sample_base`)."""
        rec = self.sample_base(seed, index, aug, image_hw=image_hw)
        if self.config.uses_mixing:
            rng = rng_at(seed, STREAM_MIX, index, aug)
            partner = int(rng.integers(0, max(num_samples - 1, 1)))
            if num_samples > 1 and partner >= index:
                partner += 1  # never mix a sample with itself
            rec["partner"] = partner
            rec["partner_aug"] = int(rng.integers(0, num_augs))
            if rng.random() < self.config.cutmix_p:
                box, lam_q = ops.sample_cutmix(rng, *self.size, self.config.mix_alpha)
                rec["mix_mode"], rec["mix_box"], rec["mix_lam"] = 1, box, lam_q
            else:
                rec["mix_mode"], rec["mix_lam"] = 0, ops.sample_mixup(rng, self.config.mix_alpha)
        return rec

    # ------------------------------------------------------------------ replay

    def apply_base(self, image: torch.Tensor, params: np.ndarray) -> torch.Tensor:
        """Crop, flip, RandAugment (``uint8``), then to float and erase: ``(C, H', W')`` in [0, 1]."""
        if image.dtype != torch.uint8 or image.ndim != 3:
            raise ConfigError(f"policies apply to uint8 (C, H, W) images, got {image.dtype} {tuple(image.shape)}")
        if image.shape[0] != self.image_shape[0]:
            raise ConfigError(f"this policy is for {self.image_shape[0]}-channel images, got {tuple(image.shape)}")
        box = top, left, bh, bw = tuple(int(v) for v in params["crop"])
        if top + bh > image.shape[1] or left + bw > image.shape[2]:  # sampled for another image size
            raise ConfigError(
                f"crop box (top {top}, left {left}, {bh}x{bw}) does not fit this {tuple(image.shape)} image: the "
                "parameters were sampled for an image of another size (is this the dataset they were made for?)"
            )
        x = ops.apply_resized_crop(image, box, self.size)
        x = ops.apply_flip(x, bool(params["flip"]))
        if self.config.uses_randaugment:
            x = ops.apply_randaugment(x, params["ra_op"], params["ra_mag"], self.config.ra_num_bins)
        x = ops.to_float(x)
        if self.config.uses_randaugment:
            x = ops.apply_erasing(x, params["erase"])
        return x

    def apply(
        self,
        image: torch.Tensor,
        params: np.ndarray,
        partner_image: torch.Tensor | None = None,
        partner_params: np.ndarray | None = None,
    ) -> torch.Tensor:
        """Replay ``params`` onto ``image``. Mixing policies also need the partner's image and the
        partner's own record (only its base part is used)."""
        x = self.apply_base(image, params)
        if not self.config.uses_mixing:
            return x
        if partner_image is None or partner_params is None:
            raise ConfigError(f"policy {self.config.name!r} mixes: pass partner_image and partner_params")
        y = self.apply_base(partner_image, partner_params)
        # x and y are this call's own float tensors (apply_base converts or clones): mix in place
        if int(params["mix_mode"]) == 1:
            return ops.apply_cutmix(x, y, params["mix_box"], inplace=True)
        return ops.apply_mixup(x, y, int(params["mix_lam"]), inplace=True)

    def replay(
        self,
        image: torch.Tensor,
        params: np.ndarray,
        image_of: Callable[[int], torch.Tensor],
        partner_params: Callable[[int, int, torch.Tensor], np.ndarray],
    ) -> torch.Tensor:
        """The view ``params`` describe, the partner fetched when the policy mixes — the one place
        mixing replay is written (reinforcement, the reinforced dataset and fresh ERM views use it).

        ``image_of(p)`` gives sample ``p``'s source image; ``partner_params(p, a, partner_image)``
        gives the record of the partner's augmentation ``a`` (``params["partner"]``,
        ``params["partner_aug"]``): a stored record, or parameters sampled afresh.
        """
        if not self.config.uses_mixing:
            return self.apply(image, params)
        p, a = int(params["partner"]), int(params["partner_aug"])
        partner = image_of(p)
        return self.apply(image, params, partner, partner_params(p, a, partner))

    def mix_weight(self, params: np.ndarray) -> float:
        """Weight of the sample's own label in a mixed record (1.0 without mixing)."""
        if not self.config.uses_mixing:
            return 1.0
        return float(params["mix_lam"]) / ops.LAMBDA_SCALE

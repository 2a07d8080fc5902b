"""Classifiers sized for the data: drkit's own small nets and timm architectures adapted to small
grayscale or large RGB inputs. Models take float images in ``[0, 1]`` and normalize internally.

``create_model(name, num_classes=..., in_chans=..., image_size=...)`` accepts:

- ``smallcnn`` / ``smallcnn-W``: two conv blocks + linear head, W base channels (default 32);
- ``mlp`` / ``mlp-W``: one hidden layer of W units (default 256);
- ``vit-mini`` / ``vit-mini-D``: a small timm ``VisionTransformer`` (embed 96, depth D=6, 3 heads,
  4-px patches below 64 px) that trains at CPU speed on 28×28 images;
- any timm name (``resnet18``, ``mobilenetv3_small_100``, ``vit_tiny_patch16_224``, ...): built
  with ``in_chans``/``num_classes``. Small inputs keep a spatial map: below 16 px the ResNet or
  MobileNet stem loses its stride and the stem max-pool; from 16 to 63 px only the max-pool goes
  (28×28 -> 14×14 after the stem, like CIFAR variants at a quarter of their cost). ViTs get
  ``img_size`` and a 4-px patch below 64 px.
"""

from __future__ import annotations

import torch
from torch import nn

from .errors import ConfigError
from .teachers import Normalize

__all__ = ["create_model", "SmallCNN", "MLP"]

_SMALL = 64
_TINY = 16


class SmallCNN(nn.Module):
    """conv-bn-relu ×2, pool, conv-bn-relu ×2, global pool, linear. ``(B, C, H, W) -> (B, classes)``."""

    def __init__(self, in_chans: int, num_classes: int, width: int = 32) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(
            *block(in_chans, width), *block(width, width), nn.MaxPool2d(2, ceil_mode=True),
            *block(width, 2 * width), *block(2 * width, 2 * width), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class MLP(nn.Module):
    def __init__(self, in_features: int, num_classes: int, width: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_features, width), nn.ReLU(inplace=True),
                                 nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _width(name: str, default: int) -> int:
    _, _, w = name.partition("-")
    try:
        return int(w) if w else default
    except ValueError as e:
        raise ConfigError(f"model {name!r}: expected NAME-WIDTH with an integer width") from e


def _timm_model(name: str, num_classes: int, in_chans: int, image_size: tuple[int, int]) -> nn.Module:
    import timm

    small = min(image_size) < _SMALL
    kwargs: dict[str, object] = {"num_classes": num_classes, "in_chans": in_chans}
    if name.startswith(("vit", "deit", "test_vit")):
        patch = 4 if small else 16
        kwargs.update(img_size=tuple(image_size), patch_size=patch)
    try:
        model = timm.create_model(name, pretrained=False, **kwargs)
    except Exception as e:
        raise ConfigError(f"timm cannot create {name!r} for {in_chans}×{image_size} with {num_classes} classes: {e}") from e
    if small:
        _adapt_stem(model, in_chans, unstride=min(image_size) < _TINY)
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    mean, std = list(cfg.get("mean", (0.5,) * 3)), list(cfg.get("std", (0.5,) * 3))
    if len(mean) != in_chans:
        mean, std = [sum(mean) / len(mean)] * in_chans, [sum(std) / len(std)] * in_chans
    return Normalize(model, mean, std)


def _adapt_stem(model: nn.Module, in_chans: int, *, unstride: bool) -> None:
    """Small images: drop the stem max-pool; for tiny ones also make the stem a 3×3 stride-1 conv."""
    conv1 = getattr(model, "conv1", None)
    if isinstance(conv1, nn.Conv2d):  # ResNet family
        if unstride:
            model.conv1 = nn.Conv2d(in_chans, conv1.out_channels, 3, 1, 1, bias=False)
        if isinstance(getattr(model, "maxpool", None), nn.Module):
            model.maxpool = nn.Identity()
        return
    conv_stem = getattr(model, "conv_stem", None)
    if isinstance(conv_stem, nn.Conv2d) and unstride:  # MobileNet / EfficientNet family
        model.conv_stem = nn.Conv2d(in_chans, conv_stem.out_channels, 3, 1, 1, bias=False)


def _vit_mini(num_classes: int, in_chans: int, image_size: tuple[int, int], depth: int) -> nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    patch = 4 if min(image_size) < _SMALL else 16
    if image_size[0] % patch or image_size[1] % patch:
        patch = 2 if image_size[0] % 2 == 0 and image_size[1] % 2 == 0 else 1
    model = VisionTransformer(img_size=tuple(image_size), patch_size=patch, in_chans=in_chans, num_classes=num_classes,
                              embed_dim=96, depth=depth, num_heads=3, mlp_ratio=2.0)
    return Normalize(model, [0.5] * in_chans, [0.5] * in_chans)


def create_model(name: str, *, num_classes: int, in_chans: int, image_size: tuple[int, int]) -> nn.Module:
    """A classifier by name (module docstring), initialised from the global torch seed."""
    if num_classes < 2 or in_chans < 1:
        raise ConfigError(f"need >= 2 classes and >= 1 channel, got {num_classes} and {in_chans}")
    base = name.split("-")[0]
    if base == "smallcnn":
        return SmallCNN(in_chans, num_classes, _width(name, 32))
    if name.startswith("vit-mini"):
        return _vit_mini(num_classes, in_chans, image_size, _width(name.replace("vit-mini", "vit"), 6))
    if base == "mlp":
        return MLP(in_chans * image_size[0] * image_size[1], num_classes, _width(name, 256))
    return _timm_model(name, num_classes, in_chans, image_size)

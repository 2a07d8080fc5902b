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

Pretrained weights (timm names only): ``NAME[.TAG]@pretrained`` asks timm for its pretrained
weights by their usual name (``convnext_tiny.fb_in22k@pretrained``), fetched and cached by timm and
huggingface_hub as they normally are (``HF_HUB_OFFLINE`` and the local HF cache are honoured);
``NAME[.TAG]@pretrained:FILE`` reads them from a local file in timm's pretrained format (the
``model.safetensors`` of the hub repository ``timm/NAME.TAG``). timm adapts them as it always does:
an RGB stem is summed to one channel for grayscale data (``in_chans`` adaptation), the position
embedding of a ViT is resampled, and a classifier for another number of classes is replaced by a
new, randomly initialised head (:func:`weights_info` says so: such a model is no teacher yet).

Every model is checked when it is built: one forward pass of two zero images at the data's size,
so an architecture that cannot take the input fails here, with a suggestion, before any data,
store or teacher is loaded.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
from safetensors.torch import load_file
from timm.models import adapt_input_conv
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from .errors import ConfigError, TeacherError

__all__ = ["create_model", "SmallCNN", "MLP", "Normalize", "ArchSpec", "weights_info", "load_state_dict",
           "adapt_state_dict"]

log = logging.getLogger(__name__)

_SMALL = 64
_TINY = 16


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, in front of a model that expects normalized input."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Weights from ``.safetensors`` or a weights-only ``torch.load``; unwraps common nesting
    (``state_dict``, ``model``, ``model_state_dict``) and DDP's ``module.`` prefix. Never unpickles."""
    path = Path(path)
    if not path.is_file():
        raise TeacherError(f"checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":

            state: Any = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise TeacherError(
            f"cannot read checkpoint {path} as weights only ({e}). drkit never unpickles code: "
            "save a state_dict with safetensors (safetensors.torch.save_file) or torch.save(model.state_dict())."
        ) from e
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TeacherError(f"checkpoint {path} does not hold a state_dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


@dataclass(frozen=True)
class ArchSpec:
    """An architecture name and where its initial weights come from: ``NAME[@pretrained[:FILE]]``."""

    name: str  # a drkit name (smallcnn-32, vit-mini-4, mlp) or a timm name, with an optional .TAG
    pretrained: bool = False  # timm's pretrained weights
    file: str | None = None  # ... read from this local file instead of the hub

    @classmethod
    def parse(cls, spec: str) -> ArchSpec:
        name, at, weights = spec.partition("@")
        if not at:
            return cls(name)
        kind, _, file = weights.partition(":")
        if kind != "pretrained" or not name or (weights != "pretrained" and not file):
            raise ConfigError(f"architecture {spec!r}: use NAME, NAME@pretrained (timm's weights) or "
                              "NAME@pretrained:FILE (a local file in timm's pretrained format)")
        return cls(name, True, file or None)

    def __str__(self) -> str:
        return self.name + ("" if not self.pretrained else "@pretrained" + (f":{self.file}" if self.file else ""))


def weights_info(model: nn.Module) -> dict[str, Any]:
    """Where a model from :func:`create_model` got its weights: ``{"weights": "random"}`` or
    ``{"weights": "pretrained", "source": ..., "pretrained_classes": K, "new_head": bool}``."""
    return dict(getattr(model, "drkit_weights", {"weights": "random"}))


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


def _pretrained_overlay(spec: ArchSpec) -> dict[str, Any] | None:
    """timm's ``pretrained_cfg_overlay`` for a local file: drkit reads the file (weights only) and
    hands timm the state dict, with the file's own class count so that a head that fits is kept."""
    if spec.file is None:
        return None

    state = load_state_dict(spec.file)
    cfg = timm.models.get_pretrained_cfg(spec.name)
    classifier = (cfg.to_dict() if cfg is not None else {}).get("classifier", "head")
    names = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    head = state.get(f"{names[0]}.weight")
    overlay: dict[str, Any] = {"state_dict": state, "source": "", "file": None}
    if head is not None and head.ndim >= 1:
        overlay["num_classes"] = int(head.shape[0])
    return overlay


def _hub_error(spec: ArchSpec, e: Exception) -> ConfigError:
    repo = f"timm/{spec.name}" if "." in spec.name else f"timm/{spec.name}.<tag>"
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    return ConfigError(
        f"cannot get timm's pretrained weights for {spec.name!r} ({type(e).__name__}: {e}). "
        + ("HF_HUB_OFFLINE is set and they are not in the local Hugging Face cache. " if offline else "")
        + f"Offline, download the file model.safetensors of the Hugging Face Hub repository {repo} on a "
        f"machine with a network and pass {spec.name}@pretrained:PATH/TO/model.safetensors, or copy that "
        f"machine's cache folder models--{repo.replace('/', '--')} into $HF_HOME/hub (default "
        "~/.cache/huggingface/hub)."
    )


def _timm_model(spec: ArchSpec, num_classes: int, in_chans: int, image_size: tuple[int, int]) -> nn.Module:
    name = spec.name
    small = min(image_size) < _SMALL
    kwargs: dict[str, object] = {"num_classes": num_classes, "in_chans": in_chans}
    if name.startswith(("vit", "deit", "test_vit")):
        patch = 4 if small else 16
        kwargs.update(img_size=tuple(image_size), patch_size=patch)
    if spec.pretrained:
        kwargs["pretrained_cfg_overlay"] = _pretrained_overlay(spec)
    try:
        model = timm.create_model(name, pretrained=spec.pretrained, **kwargs)
    except ConfigError:
        raise
    except Exception as e:
        if spec.pretrained and spec.file is None and timm.is_model(name.split(".")[0]):
            raise _hub_error(spec, e) from e
        raise ConfigError(f"timm cannot create {name!r} for {in_chans}×{image_size} with {num_classes} classes: {e}") from e
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    if small:
        _adapt_stem(model, in_chans, unstride=min(image_size) < _TINY, pretrained=spec.pretrained)
    mean, std = list(cfg.get("mean", (0.5,) * 3)), list(cfg.get("std", (0.5,) * 3))
    if len(mean) != in_chans:
        mean, std = [sum(mean) / len(mean)] * in_chans, [sum(std) / len(std)] * in_chans
    wrapped = Normalize(model, mean, std)
    if spec.pretrained:
        classes = int(cfg.get("num_classes") or 0)
        wrapped.drkit_weights = {"weights": "pretrained", "source": spec.file or f"timm:{name}",
                                 "pretrained_classes": classes, "new_head": classes != num_classes}
    return wrapped


def _adapt_stem(model: nn.Module, in_chans: int, *, unstride: bool, pretrained: bool = False) -> None:
    """Small images: drop the stem max-pool; for tiny ones also make the stem a 3×3 stride-1 conv
    (a new, randomly initialised one: pretrained stem weights do not fit it)."""
    if unstride and pretrained:
        log.info("images below %d px: the stem conv is replaced (stride 1), its pretrained weights dropped", _TINY)
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
    patch = 4 if min(image_size) < _SMALL else 16
    if image_size[0] % patch or image_size[1] % patch:
        patch = 2 if image_size[0] % 2 == 0 and image_size[1] % 2 == 0 else 1
    model = VisionTransformer(img_size=tuple(image_size), patch_size=patch, in_chans=in_chans, num_classes=num_classes,
                              embed_dim=96, depth=depth, num_heads=3, mlp_ratio=2.0)
    return Normalize(model, [0.5] * in_chans, [0.5] * in_chans)


def create_model(name: str | ArchSpec, *, num_classes: int, in_chans: int, image_size: tuple[int, int],
                 check: bool = True) -> nn.Module:
    """A classifier by name (module docstring), initialised from the global torch seed or from
    pretrained weights (``NAME@pretrained[:FILE]``). With ``check`` (the default) one forward pass
    at ``image_size`` proves that the architecture takes the data (:class:`ConfigError` if not)."""
    spec = name if isinstance(name, ArchSpec) else ArchSpec.parse(name)
    name = spec.name
    if num_classes < 2 or in_chans < 1:
        raise ConfigError(f"need >= 2 classes and >= 1 channel, got {num_classes} and {in_chans}")
    base = name.split("-")[0]
    own = base in ("smallcnn", "mlp") or name.startswith("vit-mini")
    if own and spec.pretrained:
        raise ConfigError(f"{name} is drkit's own architecture and has no pretrained weights; "
                          "pretrained weights are for timm names (resnet18.a1_in1k@pretrained)")
    if base == "smallcnn":
        model: nn.Module = SmallCNN(in_chans, num_classes, _width(name, 32))
    elif name.startswith("vit-mini"):
        model = _vit_mini(num_classes, in_chans, image_size, _width(name.replace("vit-mini", "vit"), 6))
    elif base == "mlp":
        model = MLP(in_chans * image_size[0] * image_size[1], num_classes, _width(name, 256))
    else:
        model = _timm_model(spec, num_classes, in_chans, image_size)
    if check:
        check_model(model, str(spec), in_chans=in_chans, image_size=image_size, num_classes=num_classes)
    return model


def check_model(model: nn.Module, name: str, *, in_chans: int, image_size: tuple[int, int], num_classes: int) -> None:
    """One forward pass of two zero images ``(2, in_chans, H, W)`` in eval mode; the output must be
    ``(2, num_classes)``. Raises :class:`ConfigError` with a suggestion otherwise."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, in_chans, *image_size))
    except Exception as e:  # any failure of the forward pass means the architecture cannot take the input
        raise ConfigError(
            f"{name} cannot take {in_chans}×{image_size[0]}×{image_size[1]} images ({type(e).__name__}: {e}). "
            "Choose an architecture that keeps a spatial map at this size (smallcnn-W, resnet18, "
            "mobilenetv3_small_100, vit-mini-D; below 64 px drkit already removes their stem pooling), or train "
            "on larger views (--image-size 64 and up)."
        ) from e
    finally:
        model.train(was_training)
    if isinstance(out, (tuple, list)):
        out = out[0]
    if tuple(out.shape) != (2, num_classes):
        raise ConfigError(f"{name} returns outputs of shape {tuple(out.shape)} for 2 images, expected (2, {num_classes})")


def adapt_state_dict(state: dict[str, torch.Tensor], model: nn.Module) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Fit a state dict (a drkit run's, or a raw timm/safetensors one) to ``model``.

    Names are matched as they are, or with the ``model.`` prefix of drkit's :class:`Normalize`
    wrapper added or removed. An input conv stored for another number of channels is adapted as
    timm does for pretrained weights (RGB -> grayscale: summed over the channels). Tensors whose
    shape still differs (a head for another class count) are left out. Returns the fitted state
    and the model's tensor names left at their fresh initialisation."""

    own = model.state_dict()
    fit: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        for name in (k, f"model.{k}", k.removeprefix("model.")):
            if name in own:
                break
        else:
            continue
        want = own[name]
        if v.shape != want.shape and v.ndim == 4 and want.ndim == 4 and v.shape[0] == want.shape[0] \
                and v.shape[2:] == want.shape[2:]:
            try:
                v = adapt_input_conv(want.shape[1], v).to(want.dtype)
                log.info("%s: adapted from %d to %d input channels", name, state[k].shape[1], want.shape[1])
            except NotImplementedError:  # timm adapts RGB to any count, not e.g. 1 -> 3
                continue
        if v.shape == want.shape:
            fit[name] = v
    fixed = {"mean", "std"}  # the Normalize wrapper's constants: part of the architecture, not weights
    return fit, sorted(set(own) - set(fit) - fixed)

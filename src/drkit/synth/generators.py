"""Generators: prompts in, images out, seeded. One small interface, two implementations.

- :class:`DiffusersGenerator` (``diffusers:PATH_OR_ID``): any diffusers text-to-image pipeline —
  Stable Diffusion 1.5/2.1, SDXL-Turbo, or a local folder written by ``save_pretrained`` —
  loaded **once** (fp16 on CUDA), its output resized and converted to the dataset's image shape.
- :class:`~drkit.synth.local.LocalGenerator` (``local:DIR``): a small class-conditional diffusion
  model trained on the user's own data (``drkit synth fit-generator``), so the method runs offline.

Image ``i`` of a call with ``seed`` depends only on ``(seed, i)`` and its prompt (its own noise
generator), not on the batch it was made in.
"""

from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torchvision.transforms.v2 import functional as F

from ..errors import ConfigError, DataError
from ..inference import best_device
from .prompts import DEFAULT_DOMAINS, Prompt

__all__ = ["Generator", "DiffusersGenerator", "image_seeds", "to_image_shape", "require"]

log = logging.getLogger(__name__)


def require(module: str) -> Any:
    """Import an optional dependency of ``drkit.synth`` or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ConfigError(f"drkit synth needs {module.split('.')[0]}: pip install 'drkit[synth]' ({e})") from e


def image_seeds(seed: int, count: int) -> list[int]:
    """One 63-bit seed per image, a pure function of ``(seed, image index)``."""
    if seed < 0:
        raise ConfigError(f"seed must be non-negative, got {seed}")
    return [int(np.random.SeedSequence([seed, i]).generate_state(2, np.uint64)[0] >> np.uint64(1))
            for i in range(count)]


def to_image_shape(images: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Float images ``(N, C', H', W')`` in [0, 1] -> uint8 ``(N, *shape)``: antialiased resize, RGB
    to luminance (or gray to RGB) so that a text-to-image model feeds a 28×28 grayscale dataset."""

    c, h, w = shape
    x = images.float().clamp(0, 1)
    if tuple(x.shape[-2:]) != (h, w):
        x = F.resize(x, [h, w], antialias=True)
    if x.shape[1] != c:
        if c == 1 and x.shape[1] == 3:
            x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        elif c == 3 and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        else:
            raise DataError(f"cannot convert {x.shape[1]}-channel images to {c} channels")
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).cpu()


class Generator(ABC):
    """Makes one image per prompt. ``class_names`` and ``domains`` give the prompts' ids their words;
    ``image_shape`` ``(C, H, W)`` is the shape of what :meth:`generate` returns."""

    class_names: list[str]
    domains: list[str]
    image_shape: tuple[int, int, int]

    @abstractmethod
    def generate(self, prompts: Sequence[Prompt], *, seed: int) -> torch.Tensor:
        """uint8 images ``(len(prompts), *image_shape)``; image ``i`` is a function of (seed, i, prompt)."""

    def describe(self) -> dict[str, Any]:
        """What made the images (recorded in the support set's manifest)."""
        return {"kind": type(self).__name__}

    def _check(self, prompts: Sequence[Prompt]) -> None:
        for p in prompts:
            p.check(len(self.domains), len(self.class_names))


class DiffusersGenerator(Generator):
    """A diffusers text-to-image pipeline behind :class:`Generator`.

    Args:
        pipeline: a loaded ``DiffusionPipeline`` or a hub id / local folder (loaded once, here).
        class_names: the dataset's class names, index = class id (the words of the prompts).
        image_shape: ``(C, H, W)`` of the dataset; outputs are resized/converted to it.
        domains: the domain words.
        steps, guidance_scale: sampling settings (SDXL-Turbo: ``steps=1, guidance_scale=0``).
        resolution: side the pipeline renders at (default: its own).
        device, dtype: default CUDA in float16, else CPU in float32.
        allow_download: let ``from_pretrained`` reach the hub; off by default (local files only).
        batch_size: prompts per pipeline call.
    """

    def __init__(self, pipeline: Any, class_names: Sequence[str], image_shape: tuple[int, int, int], *,
                 domains: Sequence[str] = DEFAULT_DOMAINS, steps: int = 25, guidance_scale: float = 7.5,
                 resolution: int | None = None, device: str | torch.device | None = None,
                 dtype: torch.dtype | None = None, allow_download: bool = False, batch_size: int = 8) -> None:
        if steps < 1 or batch_size < 1:
            raise ConfigError(f"steps and batch_size must be >= 1, got {steps} and {batch_size}")
        self.device = torch.device(device) if device is not None else best_device()
        self.dtype = dtype or (torch.float16 if self.device.type == "cuda" else torch.float32)
        self.source = pipeline if isinstance(pipeline, str) else type(pipeline).__name__
        if isinstance(pipeline, str):
            pipeline = _load_pipeline(pipeline, allow_download)
        if getattr(pipeline, "safety_checker", None) is not None:
            pipeline.safety_checker = None  # it blanks images it flags; we classify clothes and animals
        self.pipe = pipeline.to(device=self.device, dtype=self.dtype)
        self.pipe.set_progress_bar_config(disable=True)
        self.class_names, self.domains = list(class_names), list(domains)
        self.image_shape = tuple(int(v) for v in image_shape)  # type: ignore[assignment]
        self.steps, self.guidance_scale, self.resolution, self.batch_size = steps, guidance_scale, resolution, batch_size

    def generate(self, prompts: Sequence[Prompt], *, seed: int) -> torch.Tensor:
        self._check(prompts)
        texts = [p.text(self.class_names, self.domains) for p in prompts]
        seeds = image_seeds(seed, len(prompts))
        size = {"height": self.resolution, "width": self.resolution} if self.resolution else {}
        out = []
        for a in range(0, len(texts), self.batch_size):
            gens = [torch.Generator(self.device).manual_seed(s) for s in seeds[a : a + self.batch_size]]
            with torch.inference_mode():
                images = self.pipe(prompt=texts[a : a + self.batch_size], num_inference_steps=self.steps,
                                   guidance_scale=self.guidance_scale, generator=gens, output_type="pt", **size).images
            out.append(to_image_shape(images, self.image_shape))
        return torch.cat(out) if out else torch.zeros((0, *self.image_shape), dtype=torch.uint8)

    def describe(self) -> dict[str, Any]:
        return {"kind": "diffusers", "pipeline": self.source, "class": type(self.pipe).__name__,
                "steps": self.steps, "guidance_scale": self.guidance_scale, "resolution": self.resolution,
                "dtype": str(self.dtype).removeprefix("torch.")}


def _load_pipeline(name: str, allow_download: bool) -> Any:
    DiffusionPipeline = require("diffusers").DiffusionPipeline  # noqa: N806

    try:  # the dtype is set by .to() afterwards: the keyword's name changed across diffusers versions
        return DiffusionPipeline.from_pretrained(name, local_files_only=not allow_download)
    except Exception as e:
        hint = "" if allow_download else " (local files only: pass allow_download=True / --allow-download to fetch it)"
        raise ConfigError(f"cannot load diffusers pipeline {name!r}{hint}: {e}") from e

"""A generator by its spec: ``local:DIR`` (the offline class-conditional diffusion model), a
diffusers model name or folder, or a :class:`Generator` as it is."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError
from .generators import DiffusersGenerator, Generator
from .local import LocalGenerator
from .prompts import DEFAULT_DOMAINS


def load_generator(spec: str | Generator, *, class_names: Sequence[str], image_shape: tuple[int, int, int],
                   domains: Sequence[str] | None = None, device: str | None = None, **options: Any) -> Generator:
    """``local:DIR`` (a checkpoint of ``drkit synth fit-generator``) or ``diffusers:PATH_OR_ID``;
    a :class:`Generator` passes through. ``options`` go to the generator's constructor."""
    if isinstance(spec, Generator):
        return spec
    kind, _, arg = str(spec).partition(":")
    if kind == "local" and arg:

        gen: Generator = LocalGenerator.load(arg, device=device, **options)
        if list(class_names) != gen.class_names:
            raise ConfigError(f"generator {arg} was trained on classes {gen.class_names}, not {list(class_names)}")
        if tuple(image_shape) != gen.image_shape:
            raise ConfigError(f"generator {arg} makes {gen.image_shape} images, the dataset has {tuple(image_shape)}")
        if domains is not None and list(domains) != gen.domains:
            raise ConfigError(f"generator {arg} knows the domains {gen.domains}, not {list(domains)}")
        return gen
    if kind == "diffusers" and arg:
        return DiffusersGenerator(arg, class_names, image_shape, domains=domains or DEFAULT_DOMAINS, device=device,
                                  **options)
    raise ConfigError(f"unknown generator {spec!r}: use local:DIR (drkit synth fit-generator) or diffusers:PATH_OR_ID")

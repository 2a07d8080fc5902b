"""Prompts of the support-set agent: "A {domain} of a {class}, {class}, and {class}".

Schiavone & Li (arXiv 2404.16300, §3.3) let the agent pick a domain from a dictionary and three
class names; the generator weighs the first class most, so a prompt with three different classes
asks for an image near a class boundary, and one with the same class three times for a clean
example. A :class:`Prompt` keeps the *ids* (domain index, class ids), never only the text, so a
generated image's label is always a real class id of the dataset it supports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

__all__ = ["DEFAULT_DOMAINS", "CLASS_WEIGHTS", "CLASS_SLOTS", "Prompt", "format_prompt", "action_space_sizes"]

# The local generator knows a style for each of these (drkit.synth.local.STYLES); a text-to-image
# model accepts any words.
DEFAULT_DOMAINS = ("photo", "sketch", "close-up photo", "blurry photo")
# Weight of the 1st, 2nd and 3rd class of a prompt: the first dominates, as it does for Stable
# Diffusion (§3.3); the local generator mixes class embeddings with these weights.
CLASS_WEIGHTS = (0.6, 0.2, 0.2)
# Class slots of an action: 3 (the paper's: three classes, any mix) or 1 (one class, named three times:
# "A photo of a Bag, Bag, and Bag" -- clean examples only, the mixtures left out).
CLASS_SLOTS = (3, 1)


def format_prompt(domain: str, class_names: Sequence[str]) -> str:
    """``format_prompt("photo", ["Bag", "Coat", "Bag"]) -> "A photo of a Bag, Coat, and Bag"``."""
    if len(class_names) != 3:
        raise ConfigError(f"a prompt names exactly three classes, got {len(class_names)}")
    a, b, c = class_names
    return f"A {domain} of a {a}, {b}, and {c}"


@dataclass(frozen=True)
class Prompt:
    """One action of the agent: a domain index and three class ids (the first dominant)."""

    domain: int
    classes: tuple[int, int, int]

    def __post_init__(self) -> None:
        classes = tuple(int(c) for c in self.classes)
        if len(classes) != 3 or min(classes) < 0 or int(self.domain) < 0:
            raise ConfigError(f"a prompt needs a domain index >= 0 and three class ids >= 0, got {self}")
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "domain", int(self.domain))

    @classmethod
    def from_action(cls, action: Sequence[int] | np.ndarray, *, num_domains: int, num_classes: int,
                    class_slots: int = 3) -> Prompt:
        """A ``MultiDiscrete(action_space_sizes(...))`` action -> a prompt (checked against the sizes).
        With one class slot, ``[d, c]`` is the prompt ``(d, (c, c, c))``."""
        sizes = action_space_sizes(num_domains, num_classes, class_slots)
        a = [int(v) for v in np.asarray(action).reshape(-1)]
        if len(a) != len(sizes) or not all(0 <= v < n for v, n in zip(a, sizes, strict=True)):
            raise ConfigError(f"action {a} is not in MultiDiscrete({sizes})")
        return cls(a[0], (a[1], a[1], a[1]) if class_slots == 1 else (a[1], a[2], a[3]))

    def action(self, class_slots: int = 3) -> np.ndarray:
        """The action that asks for this prompt; with one class slot only prompts naming one class have one."""
        if class_slots == 1:
            if len(set(self.classes)) != 1:
                raise ConfigError(f"{self} names {len(set(self.classes))} classes: no action of one class slot asks for it")
            return np.array([self.domain, self.classes[0]], dtype=np.int64)
        return np.array([self.domain, *self.classes], dtype=np.int64)

    @property
    def label(self) -> int:
        """The hard label of an image made from this prompt: its first (dominant) class."""
        return self.classes[0]

    def text(self, class_names: Sequence[str], domains: Sequence[str]) -> str:
        self.check(len(domains), len(class_names))
        return format_prompt(domains[self.domain], [class_names[c] for c in self.classes])

    def mix(self, num_classes: int, weights: Sequence[float] = CLASS_WEIGHTS) -> np.ndarray:
        """The class mixture the prompt asks for, ``(num_classes,)`` summing to 1 (a repeated class
        adds up: ``(Bag, Bag, Coat)`` is 0.8 Bag, 0.2 Coat)."""
        self.check(None, num_classes)
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (3,) or (w < 0).any() or w.sum() <= 0:
            raise ConfigError(f"class weights must be three non-negative numbers, got {weights}")
        out = np.zeros(num_classes)
        np.add.at(out, list(self.classes), w / w.sum())
        return out

    def check(self, num_domains: int | None, num_classes: int) -> None:
        if num_domains is not None and self.domain >= num_domains:
            raise ConfigError(f"prompt domain {self.domain} but only {num_domains} domains")
        if max(self.classes) >= num_classes:
            raise ConfigError(f"prompt class {max(self.classes)} but only {num_classes} classes")


def action_space_sizes(num_domains: int, num_classes: int, class_slots: int = 3) -> list[int]:
    """``nvec`` of the agent's ``MultiDiscrete`` action space: ``[domains, C, C, C]`` (the paper's), or
    ``[domains, C]`` with one class slot."""
    if num_domains < 1 or num_classes < 2:
        raise ConfigError(f"need >= 1 domain and >= 2 classes, got {num_domains} and {num_classes}")
    if class_slots not in CLASS_SLOTS:
        raise ConfigError(f"class_slots must be one of {', '.join(map(str, CLASS_SLOTS))}, got {class_slots}")
    return [num_domains] + [num_classes] * class_slots

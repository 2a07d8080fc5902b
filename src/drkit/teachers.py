"""Teachers: any ``nn.Module`` (or a spec string), combined into an ensemble of probabilities.

The paper's first guideline is an ensemble of strong teachers (Faghri et al., §4.1): the
ensemble's output is the mean of its members' softmax, each at temperature ``T``. Teachers take
float images in ``[0, 1]`` of shape ``(B, C, H, W)`` and return logits ``(B, num_classes)``;
models that expect normalized input are wrapped with their normalization.

Spec strings (``load_teacher``, the CLI's ``--teacher``):

- ``timm:NAME[@CHECKPOINT]`` — a timm architecture sized for the data, weights from a
  ``.safetensors`` file (preferred) or a weights-only ``torch.load``;
- ``torchscript:PATH`` — a TorchScript archive;
- ``python:MODULE:CALLABLE`` — ``CALLABLE(num_classes=..., in_chans=...)`` returns a module;
- ``run:DIR`` — a drkit training run (its ``model.safetensors`` and ``config.json``).

Loading never unpickles: checkpoints are read with safetensors or ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import TeacherError

__all__ = ["TeacherEnsemble", "load_teacher", "load_state_dict", "best_device", "Normalize"]

log = logging.getLogger(__name__)


def best_device() -> torch.device:
    """CUDA, then Apple MPS, then CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, in front of a model that expects normalized input."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Weights from ``.safetensors`` or a weights-only ``torch.load``; unwraps common nesting."""
    path = Path(path)
    if not path.is_file():
        raise TeacherError(f"checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

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
    if not isinstance(state, dict):
        raise TeacherError(f"checkpoint {path} does not hold a state_dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _timm_teacher(name: str, checkpoint: str | None, num_classes: int, in_chans: int) -> nn.Module:
    import timm

    try:
        model = timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_chans)
    except Exception as e:
        raise TeacherError(f"timm cannot create {name!r}: {e}") from e
    if checkpoint:
        try:  # strict=False still raises on a shape mismatch (another head or stem)
            missing, unexpected = model.load_state_dict(load_state_dict(checkpoint), strict=False)
        except RuntimeError as e:
            raise TeacherError(
                f"checkpoint {checkpoint} does not fit timm:{name} with {num_classes} classes and "
                f"{in_chans} channels: {e}"
            ) from e
        if missing or unexpected:
            raise TeacherError(
                f"checkpoint {checkpoint} does not fit timm:{name} with {num_classes} classes and "
                f"{in_chans} channels (missing {missing[:3]}..., unexpected {unexpected[:3]}...)"
            )
    else:
        log.warning("timm:%s has no checkpoint: its weights are random, its soft labels meaningless", name)
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    mean, std = list(cfg.get("mean", (0.5,) * 3)), list(cfg.get("std", (0.5,) * 3))
    if in_chans != len(mean):
        mean, std = [sum(mean) / len(mean)] * in_chans, [sum(std) / len(std)] * in_chans
    return Normalize(model, mean, std)


def load_teacher(spec: str | nn.Module, *, num_classes: int, in_chans: int) -> tuple[nn.Module, dict[str, Any]]:
    """Build one teacher from a spec string (module docstring) or pass a module through.

    Returns the module and a JSON-able description for the store's manifest.
    """
    if isinstance(spec, nn.Module):
        return spec, {"kind": "module", "class": type(spec).__name__,
                      "parameters": sum(p.numel() for p in spec.parameters())}
    kind, _, arg = spec.partition(":")
    if kind == "timm" and arg:
        name, _, ckpt = arg.partition("@")
        model = _timm_teacher(name, ckpt or None, num_classes, in_chans)
    elif kind == "torchscript" and arg:
        try:
            model = torch.jit.load(arg, map_location="cpu")
        except Exception as e:
            raise TeacherError(f"cannot load TorchScript archive {arg}: {e}") from e
    elif kind == "python" and arg.count(":") == 1:
        mod_name, fn_name = arg.split(":")
        try:
            fn = getattr(importlib.import_module(mod_name), fn_name)
        except (ImportError, AttributeError) as e:
            raise TeacherError(f"cannot import {fn_name} from {mod_name} ({e}); is it on PYTHONPATH?") from e
        model = fn(num_classes=num_classes, in_chans=in_chans)
        if not isinstance(model, nn.Module):
            raise TeacherError(f"{arg} returned {type(model).__name__}, not an nn.Module")
    elif kind == "run" and arg:
        model = _run_teacher(Path(arg))
    else:
        raise TeacherError(
            f"unknown teacher {spec!r}: use timm:NAME[@CHECKPOINT], torchscript:PATH, "
            "python:MODULE:CALLABLE or run:DIR"
        )
    return model, {"kind": kind, "spec": spec, "parameters": sum(p.numel() for p in model.parameters())}


def _run_teacher(run_dir: Path) -> nn.Module:
    """A drkit training run as a teacher: ``config.json`` names the architecture."""
    from .models import create_model

    cfg_path, weights = run_dir / "config.json", run_dir / "model.safetensors"
    if not cfg_path.is_file() or not weights.is_file():
        raise TeacherError(f"{run_dir} is not a finished drkit run (needs config.json and model.safetensors)")
    cfg = json.loads(cfg_path.read_text())
    model = create_model(cfg["arch"], num_classes=cfg["num_classes"], in_chans=cfg["in_chans"],
                         image_size=tuple(cfg["image_size"]))
    try:
        model.load_state_dict(load_state_dict(weights))
    except RuntimeError as e:
        raise TeacherError(f"{weights} does not fit the model its config.json describes: {e}") from e
    return model


def probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Class probabilities ``(B, classes)`` of ``model`` on ``x``: the softmax of a classifier's
    logits, or a :class:`TeacherEnsemble`'s output as it is (it already averages probabilities)."""
    y = model(x).float()
    return y if isinstance(model, TeacherEnsemble) else torch.softmax(y, -1)


class TeacherEnsemble(nn.Module):
    """Mean of the members' ``softmax(logits / temperature)``: ``(B, C, H, W) -> (B, classes)``.

    Members run in eval mode without gradients; on CUDA with autocast (bf16) and channels-last.
    """

    def __init__(self, members: Sequence[nn.Module], *, temperature: float = 1.0) -> None:
        super().__init__()
        if not members:
            raise TeacherError("a teacher ensemble needs at least one member")
        if temperature <= 0:
            raise TeacherError(f"temperature must be > 0, got {temperature}")
        self.members = nn.ModuleList(members)
        self.temperature = float(temperature)
        self.eval()

    def train(self, mode: bool = True) -> TeacherEnsemble:  # teachers never train
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = x.device
        amp = device.type == "cuda"
        if amp:
            x = x.contiguous(memory_format=torch.channels_last)
        total: torch.Tensor | None = None
        for m in self.members:
            ctx = torch.autocast("cuda", dtype=torch.bfloat16) if amp else contextlib.nullcontext()
            with ctx:
                logits = m(x)
            if isinstance(logits, (tuple, list)):
                logits = logits[0]
            p = torch.softmax(logits.float() / self.temperature, dim=-1)
            total = p if total is None else total + p
        assert total is not None
        return total / len(self.members)

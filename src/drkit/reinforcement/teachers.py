"""Teachers: any ``nn.Module`` (or a spec string), combined into an ensemble of probabilities.

The paper's first guideline is an ensemble of strong teachers (Faghri et al., §4.1): the
ensemble's output is the mean of its members' softmax, each at temperature ``T``. Teachers take
float images in ``[0, 1]`` of shape ``(B, C, H, W)`` and return logits ``(B, num_classes)``;
models that expect normalized input are wrapped with their normalization.

Spec strings (``load_teacher``, the CLI's ``--teacher``):

- ``ensemble:DIR`` — an ensemble made by ``drkit teach`` (``DIR/ensemble.json``): its members and
  the temperature fitted on its held-out split (an explicit temperature overrides it);
- ``run:DIR`` — a drkit training run (its ``model.safetensors`` and ``config.json``);
- ``timm:NAME@CHECKPOINT`` — a timm architecture sized for the data, weights from a
  ``.safetensors`` file (preferred) or a weights-only ``torch.load``;
- ``timm:NAME[.TAG]@pretrained[:FILE]`` — timm's pretrained weights (the hub, or a local file in
  timm's format; :mod:`drkit.models`). Only a teacher if its head already has the data's classes:
  a new head is untrained — fine-tune it with ``drkit teach`` first;
- ``torchscript:PATH`` — a TorchScript archive (**runs code from the archive**);
- ``python:MODULE:CALLABLE`` — ``CALLABLE(num_classes=..., in_chans=...)`` returns a module
  (**imports and runs that module**).

A teacher with random weights (``timm:NAME`` with no weights) is an error: its soft labels would be
meaningless. Cost benchmarks that need untrained teachers pass ``allow_random=True``.

Loading never unpickles: checkpoints are read with safetensors or ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from ..errors import ConfigError, TeacherError
from ..models import ArchSpec, Normalize, create_model, load_state_dict, weights_info

__all__ = ["TeacherEnsemble", "load_teacher", "load_state_dict", "Normalize", "prepare_teacher",
           "EnsembleFile", "ENSEMBLE_FILE", "expand_teachers", "store_teachers"]

log = logging.getLogger(__name__)

ENSEMBLE_FILE = "ensemble.json"
_ENSEMBLE_FORMAT = "drkit-teacher-ensemble"


@dataclass
class EnsembleFile:
    """``DIR/ensemble.json`` written by ``drkit teach``: what ``--teacher ensemble:DIR`` loads.

    Member runs are paths relative to ``DIR`` (the folder can be moved). ``metrics`` holds what
    ``drkit teach`` measured (per member and for the ensemble), printed before reinforcing."""

    members: list[str]  # run directories, relative to the ensemble's folder
    temperature: float  # fitted on the held-out split (minimum NLL)
    dataset: str = ""  # the training data's name
    holdout: dict[str, Any] = field(default_factory=dict)  # fraction, seed, size and the indices file
    metrics: dict[str, Any] = field(default_factory=dict)

    def write(self, root: str | Path) -> Path:
        path = Path(root) / ENSEMBLE_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"format": _ENSEMBLE_FORMAT, "version": 1, **asdict(self)}, indent=2) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, root: str | Path) -> EnsembleFile:
        path = Path(root) / ENSEMBLE_FILE
        if not path.is_file():
            raise TeacherError(f"{root} is not a teacher ensemble (no {ENSEMBLE_FILE}); make one with `drkit teach`")
        try:
            d = json.loads(path.read_text())
            if d.get("format") != _ENSEMBLE_FORMAT or d.get("version") != 1:
                raise ValueError(f"format {d.get('format')!r} version {d.get('version')!r}")
            ens = cls(members=[str(m) for m in d["members"]], temperature=float(d["temperature"]),
                      dataset=str(d.get("dataset", "")), holdout=dict(d.get("holdout", {})),
                      metrics=dict(d.get("metrics", {})))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise TeacherError(f"{path} is not a valid drkit ensemble description ({e}); rerun `drkit teach`") from e
        if not ens.members or not ens.temperature > 0:
            raise TeacherError(f"{path} lists no members or a temperature <= 0; rerun `drkit teach`")
        for m in ens.members:
            if Path(m).is_absolute() or ".." in Path(m).parts:
                raise TeacherError(f"{path}: member {m!r} must be a path inside the ensemble's folder")
        return ens

    def member_specs(self, root: str | Path) -> list[str]:
        return [f"run:{Path(root) / m}" for m in self.members]


def expand_teachers(teachers: str | nn.Module | Sequence[str | nn.Module],
                    temperature: float | None) -> tuple[list[str | nn.Module], float]:
    """Replace each ``ensemble:DIR`` by its members and resolve the temperature: ``temperature``
    when given, else the one fitted by ``drkit teach`` (one ensemble, or several that agree), else 1."""
    specs = [teachers] if isinstance(teachers, (str, nn.Module)) else list(teachers)
    flat: list[str | nn.Module] = []
    fitted: set[float] = set()
    for spec in specs:
        if isinstance(spec, str) and spec.startswith("ensemble:"):
            root = spec.partition(":")[2]
            if not root:
                raise TeacherError("ensemble: needs a directory made by `drkit teach` (ensemble:DIR)")
            ens = EnsembleFile.read(root)
            flat += ens.member_specs(root)
            fitted.add(ens.temperature)
        else:
            flat.append(spec)
    if temperature is not None:
        if temperature <= 0:
            raise TeacherError(f"temperature must be > 0, got {temperature}")
        return flat, float(temperature)
    if len(fitted) > 1:
        raise ConfigError(f"the ensembles were fitted at different temperatures ({sorted(fitted)}): "
                          "pass --temperature")
    return flat, (fitted.pop() if fitted else 1.0)


def _timm_teacher(name: str, checkpoint: str | None, num_classes: int, in_chans: int,
                  image_size: tuple[int, int] | None, allow_random: bool) -> nn.Module:
    if checkpoint and checkpoint.partition(":")[0] == "pretrained":
        spec = ArchSpec.parse(f"{name}@{checkpoint}")
        model = create_model(spec, num_classes=num_classes, in_chans=in_chans, image_size=image_size or (224, 224))
        info = weights_info(model)
        if info.get("new_head"):
            raise TeacherError(
                f"timm:{spec} has a new {num_classes}-class head (its pretrained weights are for "
                f"{info['pretrained_classes']} classes): it is not a teacher yet. Fine-tune it on your data first: "
                f"`drkit teach DATA --arch {spec} --out TEACHERS`, then --teacher ensemble:TEACHERS"
            )
        return model

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
    elif allow_random:
        log.warning("timm:%s has no weights: random (allowed for cost measurements only)", name)
    else:
        raise TeacherError(
            f"timm:{name} has no weights: a teacher with random weights gives meaningless soft labels. Give it "
            f"weights (timm:{name}@CHECKPOINT, timm:{name}.TAG@pretrained when its head has your classes) or build "
            f"an ensemble for your data with `drkit teach DATA --arch {name} --out TEACHERS` and pass "
            "--teacher ensemble:TEACHERS. (Cost benchmarks that need untrained teachers: --allow-random-teacher.)"
        )
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    mean, std = list(cfg.get("mean", (0.5,) * 3)), list(cfg.get("std", (0.5,) * 3))
    if in_chans != len(mean):
        mean, std = [sum(mean) / len(mean)] * in_chans, [sum(std) / len(std)] * in_chans
    return Normalize(model, mean, std)


def load_teacher(spec: str | nn.Module, *, num_classes: int, in_chans: int,
                 image_size: tuple[int, int] | None = None, allow_random: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """Build one teacher from a spec string (module docstring) or pass a module through.

    ``image_size`` (the data's) sizes pretrained timm teachers as :func:`drkit.models.create_model`
    does; ``allow_random`` lets ``timm:NAME`` without weights through (cost benchmarks only).
    ``ensemble:DIR`` gives a :class:`TeacherEnsemble` at its fitted temperature.
    Returns the module and a JSON-able description for the store's manifest.
    """
    if isinstance(spec, nn.Module):
        return spec, {"kind": "module", "class": type(spec).__name__,
                      "parameters": sum(p.numel() for p in spec.parameters())}
    kind, _, arg = spec.partition(":")
    if kind == "ensemble" and arg:
        members, temperature = expand_teachers(spec, None)
        model: nn.Module = TeacherEnsemble(
            [load_teacher(m, num_classes=num_classes, in_chans=in_chans, image_size=image_size)[0] for m in members],
            temperature=temperature)
    elif kind == "timm" and arg:
        name, _, ckpt = arg.partition("@")
        model = _timm_teacher(name, ckpt or None, num_classes, in_chans, image_size, allow_random)
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
        model = run_dir_model(Path(arg))
    else:
        raise TeacherError(
            f"unknown teacher {spec!r}: use timm:NAME@CHECKPOINT, timm:NAME@pretrained[:FILE], torchscript:PATH, "
            "python:MODULE:CALLABLE, run:DIR or ensemble:DIR"
        )
    return model, {"kind": kind, "spec": spec, "parameters": sum(p.numel() for p in model.parameters())}


def run_dir_model(run_dir: Path) -> nn.Module:
    """A drkit training run as a teacher: ``config.json`` names the architecture (its weights come
    from the run, so a pretrained marker in the name is not fetched again)."""
    cfg_path, weights = run_dir / "config.json", run_dir / "model.safetensors"
    if not cfg_path.is_file() or not weights.is_file():
        raise TeacherError(f"{run_dir} is not a finished drkit run (needs config.json and model.safetensors)")
    cfg = json.loads(cfg_path.read_text())
    model = create_model(ArchSpec.parse(cfg["arch"]).name, num_classes=cfg["num_classes"], in_chans=cfg["in_chans"],
                         image_size=tuple(cfg["image_size"]), check=False)
    try:
        model.load_state_dict(load_state_dict(weights))
    except RuntimeError as e:
        raise TeacherError(f"{weights} does not fit the model its config.json describes: {e}") from e
    return model


class TeacherEnsemble(nn.Module):
    """Mean of the members' ``softmax(logits / temperature)``: ``(B, C, H, W) -> (B, classes)``.

    Members run in eval mode without gradients, in channels-last memory format (on this project's
    2-core CPU 1.8-4x faster than contiguous for convolutional teachers, same fp32 math; see
    docs/benchmarks.md); on CUDA also with autocast (bf16).
    """

    outputs_probabilities = True  # drkit.inference.probabilities takes the output as it is

    def __init__(self, members: Sequence[nn.Module], *, temperature: float = 1.0) -> None:
        super().__init__()
        if not members:
            raise TeacherError("a teacher ensemble needs at least one member")
        if temperature <= 0:
            raise TeacherError(f"temperature must be > 0, got {temperature}")
        self.members = nn.ModuleList(m.to(memory_format=torch.channels_last) for m in members)
        self.temperature = float(temperature)
        self.eval()

    def train(self, mode: bool = True) -> TeacherEnsemble:  # teachers never train
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = x.device
        amp = device.type == "cuda"
        if x.ndim == 4:
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


def prepare_teacher(teachers: str | nn.Module | Sequence[str | nn.Module], dataset: Any, *,
                    temperature: float | None = None, allow_random: bool = False) -> tuple[TeacherEnsemble, dict[str, Any]]:
    """Load every member (``ensemble:DIR`` expanded) for ``dataset`` and describe the ensemble
    (specs, parameter counts, weight checksums, the resolved temperature)."""
    specs, temperature = expand_teachers(teachers, temperature)
    if not specs:
        raise TeacherError("no teacher given: pass at least one --teacher")
    c, h, w = dataset.image_shape
    members, descs = [], []
    for spec in specs:
        model, desc = load_teacher(spec, num_classes=dataset.num_classes, in_chans=c, image_size=(h, w),
                                   allow_random=allow_random)
        desc["weights_sha256"] = _weights_sha256(model)
        members.append(model)
        descs.append(desc)
    return TeacherEnsemble(members, temperature=temperature), {"members": descs, "temperature": temperature}


def _weights_sha256(module: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def store_teachers(settings: dict[str, Any], *, where: str, trust: bool) -> tuple[list[str], float]:
    """The teacher specs and temperature a store's manifest records (``settings``), for KD, audit
    and eval — only with ``trust``. A store is data: the specs it names are descriptions, and one
    from a stranger could name code to run (``python:``, ``torchscript:``) or any file on disk. So
    without ``trust`` this raises, saying how to name the teachers yourself."""
    teacher = settings.get("teacher", {})
    specs = [m.get("spec") for m in teacher.get("members", [])]
    if not specs or not all(isinstance(s, str) and s for s in specs):
        raise ConfigError(f"{where} was made with teacher modules given from Python (no specs recorded); "
                          "pass the teachers yourself (--teacher SPEC)")
    if not trust:
        code = [s for s in specs if s.partition(":")[0] in ("python", "torchscript")]
        raise TeacherError(
            f"{where} records its teachers as {', '.join(specs)}. drkit does not load teachers named by a store "
            "(a store is data; one from someone else could name code to run"
            + (f" — {', '.join(code)} would run code" if code else "") + "): name them yourself with --teacher "
            "SPEC (repeat for an ensemble), or pass --trust-store-teachers if you made this store or trust its source."
        )
    return specs, float(teacher.get("temperature", 1.0))

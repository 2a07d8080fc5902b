"""A baseline training loop others can import and benchmark against (airbench-style).

:class:`Trainer` fits any classifier on a dataset that yields ``(image, target, label)`` where the
target is a distribution (one-hot for ERM, the stored soft label for DR) — or, with a ``teacher``,
replaces the target by the teacher's output on the same batch (online knowledge distillation, the
honest baseline). :class:`FreshAugmented` is the ERM dataset: each epoch samples new parameters of
the same policy drkit reinforces with.

Everything that shapes a run is a function of (seed, epoch): the data order, the augmentations,
the replayed records. A run saved after epoch ``e`` and resumed continues exactly as if it had not
stopped; checkpoints are safetensors (model and optimizer tensors) plus JSON.

Inside an initialised process group of more than one process (``torchrun``, see
:mod:`drkit.training.distributed`) the trainer is data-parallel: the model is wrapped in
``DistributedDataParallel`` (gradients all-reduced every step), a ``DistributedSampler`` gives each
rank its own part of the (seed, epoch) permutation, and the epoch's loss and accuracy are summed
over the ranks. ``batch_size`` is per process: the global batch is ``batch_size × world size``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset

from .._progress import progress_bar
from ..errors import ConfigError
from . import distributed
from .losses import soft_target_cross_entropy, sparse_soft_target_cross_entropy

log = logging.getLogger(__name__)

@dataclass
class TrainConfig:
    """Optimisation settings (AdamW, linear warm-up then cosine decay)."""

    epochs: int = field(default=10, metadata={"help": "passes over the training set"})
    batch_size: int = field(default=64, metadata={"help": "images per step and process (under torchrun the "
                                                          "global batch is batch_size x processes)"})
    lr: float = field(default=2e-3, metadata={"help": "peak learning rate (AdamW)"})
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay"})
    warmup_epochs: float = field(default=1.0, metadata={"help": "linear warm-up length in epochs"})
    label_smoothing: float = field(default=0.0, metadata={"help": "mix this much of the uniform distribution into every target"})
    # auto by default: bf16 kept CNN accuracy within the seeds' spread and trained them 1.5-1.9x
    # faster on a CPU with native bf16, while a ViT's bf16 step is 0.55-0.63x (docs/benchmarks.md)
    precision: str = field(default="auto", metadata={"help": "auto: bf16 (autocast + channels-last) for models without attention on a CPU with native bf16 (AVX512-BF16/AMX), else fp32; fp32; bf16"})
    seed: int = field(default=0, metadata={"help": "seed of initialisation, data order, augmentation and replay"})
    num_workers: int = field(default=0, metadata={"help": "DataLoader workers"})
    device: str | None = field(default=None, metadata={"help": "cuda, mps or cpu (default: best available)"})

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.batch_size <= 0 or self.lr <= 0:
            raise ConfigError(f"epochs, batch_size and lr must be positive, got {self.epochs}, {self.batch_size}, {self.lr}")
        if self.num_workers < 0 or self.weight_decay < 0 or self.warmup_epochs < 0:
            raise ConfigError("num_workers, weight_decay and warmup_epochs must be >= 0")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")



def cpu_has_native_bf16() -> bool:
    """True where oneDNN runs bf16 natively on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def has_attention(model: nn.Module) -> bool:
    """Whether ``model`` holds an attention layer (``nn.MultiheadAttention``, timm's ``Attention``
    and its kin: any module class named ``*Attention*``)."""
    return any(isinstance(m, nn.MultiheadAttention) or "Attention" in type(m).__name__ for m in model.modules())


def resolve_bf16(precision: str, device: torch.device, model: nn.Module | None = None) -> bool:
    """Whether a run at ``precision`` trains ``model`` with bf16 autocast + channels-last on ``device``.

    ``auto`` picks bf16 only where it was measured faster at unchanged accuracy
    (``benchmarks/cpu_precision.py``, docs/benchmarks.md): a CPU with native bf16 and a model
    without attention (CNNs: 1.5-1.9x faster, top-1 within the seeds' spread; a ViT's bf16 step
    is slower). On CUDA/MPS ``auto`` stays fp32."""
    if precision == "auto":
        return (device.type == "cpu" and cpu_has_native_bf16()
                and not (model is not None and has_attention(model)))
    return precision == "bf16"


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def _flatten_views(x: torch.Tensor, target: Any, label: torch.Tensor) -> tuple[torch.Tensor, Any, torch.Tensor]:
    """``(B, V, ...)`` items from a multi-view dataset -> ``(B*V, ...)``."""
    if x.ndim != 5:
        return x, target, label
    b, v = x.shape[:2]
    if isinstance(target, (tuple, list)):
        target = tuple(t.flatten(0, 1) for t in target)
    else:
        target = target.flatten(0, 1)
    return x.flatten(0, 1), target, label.repeat_interleave(v)


class Trainer:
    """Owns the model, optimizer, schedule and data order of one training run.

    Args:
        model: any classifier ``(B, C, H, W) -> (B, classes)``.
        data: items ``(image, target, label)``; ``target`` a distribution ``(classes,)`` or a
            sparse ``(values, ids)`` pair. ``data.set_epoch(e)`` is called when it exists.
        config: optimisation settings.
        teacher: if given, its output on each batch replaces the target (online KD).

    In a process group (``torchrun``) each rank builds its own ``Trainer`` on the same data and
    config: the model is wrapped in ``DistributedDataParallel`` (:attr:`model` stays the plain
    module, for saving and evaluation), the data is split by a ``DistributedSampler`` whose
    permutation is a function of (seed, epoch) — the last batch padded with repeated samples so
    that every rank takes the same number of steps — and ``config.device`` ``cuda`` means this
    rank's GPU (``LOCAL_RANK``).
    """

    def __init__(self, model: nn.Module, data: Dataset, config: TrainConfig, *, teacher: nn.Module | None = None) -> None:
        self.config = config
        self.dist = distributed.world()
        self.device = distributed.rank_device(config.device)
        self.bf16 = resolve_bf16(config.precision, self.device, model)
        self.model = model.to(self.device)
        if self.bf16:
            self.model = self.model.to(memory_format=torch.channels_last)
        log.info("training in %s (precision=%s)", "bf16 + channels-last" if self.bf16 else "fp32", config.precision)
        self.teacher = teacher.to(self.device).eval() if teacher is not None else None
        self.data = data
        self._gen = torch.Generator()
        # the module that trains: DDP all-reduces the gradients (and broadcast rank 0's weights when
        # wrapping, so every rank starts from the same model)
        self._step_model: nn.Module = self.model
        self.sampler: DistributedSampler | None = None
        # an iterable dataset (StreamedReinforcedDataset) orders and splits its stream itself
        ordered = not isinstance(data, IterableDataset)
        if self.dist.world_size > 1:
            self._step_model = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if self.dist.world_size > 1 and ordered:
            # permutation seed: the same function of (seed, epoch) on every rank (set_epoch adds e)
            self.sampler = DistributedSampler(data, num_replicas=self.dist.world_size, rank=self.dist.rank,
                                              shuffle=True, seed=config.seed * 1_000_003, drop_last=False)
        # Workers must not persist: they hold a copy of `data` and would miss set_epoch.
        shuffle = ordered and self.sampler is None
        self.loader = DataLoader(data, batch_size=config.batch_size, shuffle=shuffle, sampler=self.sampler,
                                 generator=self._gen if shuffle else None,
                                 num_workers=config.num_workers, pin_memory=self.device.type == "cuda")
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.steps_per_epoch = len(self.loader)
        total, warmup = config.epochs * self.steps_per_epoch, max(1, int(config.warmup_epochs * self.steps_per_epoch))
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: _lr_factor(s, total, warmup))
        self.epoch = 0  # epochs completed
        self.history: list[dict[str, float]] = []

    def _loss(self, logits: torch.Tensor, target: Any) -> torch.Tensor:
        if isinstance(target, (tuple, list)):
            loss = sparse_soft_target_cross_entropy(logits, target[0].to(self.device), target[1].to(self.device))
        else:
            loss = soft_target_cross_entropy(logits, target.to(self.device))
        eps = self.config.label_smoothing
        if eps:  # cross-entropy is linear in the target: smoothing = a mix with the uniform target's loss
            uniform = -torch.log_softmax(logits.float(), dim=-1).mean(-1).mean()
            loss = (1 - eps) * loss + eps * uniform
        return loss

    def run_epoch(self, *, progress: bool = True, desc: str = "train") -> dict[str, float]:
        """Train one epoch (the next one) and return its metrics."""
        e = self.epoch
        if hasattr(self.data, "set_epoch"):
            self.data.set_epoch(e)
        self._gen.manual_seed(self.config.seed * 1_000_003 + e)  # data order: a function of (seed, epoch)
        if self.sampler is not None:
            self.sampler.set_epoch(e)
        self.model.train()
        t0, loss_sum, correct, n = time.perf_counter(), 0.0, 0, 0
        bar = progress_bar(self.steps_per_epoch, desc=f"{desc} {e + 1}/{self.config.epochs}", unit="step",
                           enabled=progress and self.dist.is_main)
        for x, target, label in self.loader:
            x, target, label = _flatten_views(x, target, label)
            x, label = x.to(self.device, non_blocking=True), label.to(self.device)
            if self.teacher is not None:
                with torch.no_grad():
                    target = self.teacher(x)
            if self.bf16:
                x = x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                logits = self._step_model(x)
            loss = self._loss(logits, target)  # in float32: the losses cast the logits
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.sched.step()
            loss_sum += loss.item() * len(x)
            correct += int((logits.argmax(-1) == label).sum())
            n += len(x)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / n:.3f}", refresh=False)
        bar.close()
        self.epoch += 1
        self.model.eval()
        if self.dist.world_size > 1:  # the epoch's numbers over all ranks (padding repeats included)
            loss_sum, correct, n = distributed.all_reduce_sum([loss_sum, correct, n], self.device)
            correct, n = int(correct), int(n)
            # DDP sends rank 0's buffers (BatchNorm statistics) at the start of each forward, so after
            # the last step every rank's differ by its own last batch: make them rank 0's, so every
            # rank holds the model rank 0 saves
            distributed.broadcast_buffers(self.model)
        metrics = {"epoch": e, "loss": loss_sum / n, "train_acc": correct / n, "seconds": time.perf_counter() - t0}
        if self.dist.world_size > 1:
            metrics["world_size"] = self.dist.world_size
            metrics["samples"] = n
        self.history.append(metrics)
        return metrics

    # ------------------------------------------------------------------ checkpoints

    def save(self, directory: str | Path) -> None:
        """``checkpoint.safetensors`` (model + optimizer tensors) and ``checkpoint.json`` (the rest),
        written atomically so a crash mid-save keeps the previous checkpoint."""

        d = Path(directory)
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        opt = self.opt.state_dict()
        for pid, st in opt["state"].items():
            for name, v in st.items():
                tensors[f"opt.{pid}.{name}"] = torch.as_tensor(v).detach().cpu().contiguous()
        save_file(tensors, str(d / "checkpoint.safetensors.tmp"))
        meta = {"epoch": self.epoch, "history": self.history, "sched": self.sched.state_dict()}
        (d / "checkpoint.json.tmp").write_text(json.dumps(meta))
        (d / "checkpoint.safetensors.tmp").replace(d / "checkpoint.safetensors")
        (d / "checkpoint.json.tmp").replace(d / "checkpoint.json")

    def load(self, directory: str | Path) -> None:
        d = Path(directory)
        tensors = load_file(str(d / "checkpoint.safetensors"))
        meta = json.loads((d / "checkpoint.json").read_text())
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        opt = self.opt.state_dict()
        state: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in tensors.items():
            if k.startswith("opt."):
                _, pid, name = k.split(".", 2)
                state.setdefault(int(pid), {})[name] = v
        opt["state"] = state
        self.opt.load_state_dict(opt)
        self.sched.load_state_dict(meta["sched"])
        for g, lr in zip(self.opt.param_groups, self.sched.get_last_lr(), strict=True):
            g["lr"] = lr
        self.epoch, self.history = meta["epoch"], meta["history"]


def train(model: nn.Module, data: Dataset, config: TrainConfig | None = None, *, teacher: nn.Module | None = None,
          progress: bool = True, desc: str = "train") -> list[dict[str, float]]:
    """Fit ``model`` on ``data`` for ``config.epochs`` epochs; returns per-epoch metrics."""
    trainer = Trainer(model, data, config or TrainConfig(), teacher=teacher)
    for _ in range(trainer.config.epochs):
        trainer.run_epoch(progress=progress, desc=desc)
    return trainer.history

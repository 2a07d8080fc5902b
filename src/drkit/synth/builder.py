"""The environment's machinery: a classifier, its real data, a generator and a growing support set.

One step of Schiavone & Li's loop (arXiv 2404.16300, §3): the prompt's images are generated and
added to the support set, the classifier *continues* training on real + synthetic data for
``epochs_per_step`` epochs, and the reward is read off the **validation** split — carved from the
training data, never the test set (the reference code's fault). The generator is loaded once, by
the caller; the budget is counted in images.

``reward_signal="probe"`` reads the reward off two short probes instead (:meth:`SupportSetBuilder._probe`):
the step reward of 10 images among a thousand real ones is mostly the noise of an epoch's shuffling.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import ArrayDataset, ImageDataset, stratified_subset
from ..errors import ConfigError, DataError
from ..models import create_model
from ..training.loop import TrainConfig, Trainer
from ..training.loop import train as fit
from .generators import Generator
from .prompts import CLASS_SLOTS, Prompt
from .reward import Reward, Validation, compute_reward, validate
from .support import LABEL_MODES, LabelledImages, SupportSet, as_array_dataset

__all__ = ["SynthConfig", "SupportSetBuilder", "StepResult", "split_validation"]

log = logging.getLogger(__name__)

REWARD_SIGNALS = ("step", "probe")


@dataclass
class SynthConfig:
    """Settings of one support-set run (the paper's: 400 images, 10 per step)."""

    budget: int = field(default=400, metadata={"help": "synthetic images in all"})
    images_per_step: int = field(default=10, metadata={"help": "images generated per agent step"})
    epochs_per_step: int = field(default=1, metadata={"help": "epochs on real + synthetic data after each step"})
    pretrain_epochs: int = field(default=15, metadata={"help": "epochs on the real data before the first step"})
    entropy_weight: float = field(default=0.1, metadata={"help": "λ: reward = Δ val accuracy − λ·Δ mean val entropy"})
    reward_signal: str = field(default="step", metadata={"help": "step: Δ across the step's training (the paper's); probe: Δ of a short probe on real + this step's images against the same probe on real images alone (the shuffling noise cancels)"})
    probe_steps: int = field(default=5, metadata={"help": "SGD steps of each probe (reward_signal=probe)"})
    probe_lr: float = field(default=5e-3, metadata={"help": "SGD learning rate of the probes (reward_signal=probe)"})
    val_fraction: float = field(default=0.25, metadata={"help": "stratified share of the training data held out for the reward"})
    arch: str = field(default="smallcnn-16", metadata={"help": "the rewarded classifier (drkit.create_model name)"})
    batch_size: int = field(default=64, metadata={"help": "classifier batch size"})
    lr: float = field(default=2e-3, metadata={"help": "peak learning rate of pretraining"})
    step_lr: float = field(default=5e-4, metadata={"help": "peak learning rate of the training after each step"})
    class_slots: int = field(default=3, metadata={"help": "class slots of the agent's action: 3 (the paper's: 'A {domain} of a {c1}, {c2}, and {c3}') or 1 (one class named three times: clean examples, no mixtures)"})
    synthetic_label: str = field(default="first", metadata={"help": "target of a synthetic image: first (its first class), prompt (the 0.6/0.2/0.2 class mix) or teacher"})
    split_seed: int = field(default=0, metadata={"help": "seed of the validation split (keep it equal to fit-generator's)"})
    seed: int = field(default=0, metadata={"help": "seed of the classifier, the generator's noise and the agent"})
    device: str | None = field(default=None, metadata={"help": "cuda, mps or cpu (default: best available)"})

    def __post_init__(self) -> None:
        if self.budget < 1 or self.images_per_step < 1 or self.epochs_per_step < 1 or self.pretrain_epochs < 0:
            raise ConfigError("budget, images_per_step and epochs_per_step must be >= 1, pretrain_epochs >= 0")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.synthetic_label not in LABEL_MODES:
            raise ConfigError(f"synthetic_label must be one of {', '.join(LABEL_MODES)}, got {self.synthetic_label!r}")
        if self.entropy_weight < 0 or self.lr <= 0 or self.step_lr <= 0 or min(self.seed, self.split_seed) < 0:
            raise ConfigError("entropy_weight and the seeds must be >= 0, lr and step_lr > 0")
        if self.reward_signal not in REWARD_SIGNALS:
            raise ConfigError(f"reward_signal must be one of {', '.join(REWARD_SIGNALS)}, got {self.reward_signal!r}")
        if self.class_slots not in CLASS_SLOTS:
            raise ConfigError(f"class_slots must be one of {', '.join(map(str, CLASS_SLOTS))}, got {self.class_slots}")
        if self.probe_steps < 1 or self.probe_lr <= 0:
            raise ConfigError(f"probe_steps must be >= 1 and probe_lr > 0, got {self.probe_steps} and {self.probe_lr}")

    @property
    def num_steps(self) -> int:
        """Agent steps in one episode (the last one may make fewer images)."""
        return -(-self.budget // self.images_per_step)


def split_validation(dataset: ImageDataset, fraction: float, *, seed: int) -> tuple[ArrayDataset, ArrayDataset]:
    """A stratified ``(train, val)`` split of ``dataset`` (``fraction`` of each class held out)."""
    data = as_array_dataset(dataset)
    val_idx = stratified_subset(data.labels, fraction, seed=seed)
    train_idx = np.setdiff1d(np.arange(len(data)), val_idx)
    if len(train_idx) == 0:
        raise DataError(f"{dataset.name}: too few samples to hold out a validation split")
    return (data.subset(train_idx, name=f"{data.name}[train {len(train_idx)}]"),
            data.subset(val_idx, name=f"{data.name}[val {len(val_idx)}]"))


@dataclass
class StepResult:
    """What one agent step did."""

    step: int
    prompt: Prompt
    text: str
    seed: int
    images: int
    reward: Reward
    validation: Validation

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "prompt": self.text, "domain": self.prompt.domain,
                "classes": list(self.prompt.classes), "seed": self.seed, "images": self.images,
                **self.reward.to_dict(), "val_accuracy": self.validation.accuracy,
                "val_entropy": self.validation.mean_entropy}


class SupportSetBuilder:
    """Owns the classifier and the support set of one episode; :meth:`step` spends the budget.

    Args:
        train: real training data (what the classifier and the support set add to).
        val: held-out real data, the only data the reward looks at.
        generator: loaded once; its classes and image shape must be ``train``'s.
        config: the run's settings.
        teacher: with ``synthetic_label="teacher"``, its probabilities label synthetic images.
    """

    def __init__(self, train: ImageDataset, val: ImageDataset, generator: Generator, config: SynthConfig, *,
                 teacher: nn.Module | None = None, progress: bool = False) -> None:
        if list(val.classes) != list(train.classes) or val.image_shape != train.image_shape:
            raise DataError(f"validation data {val.name} does not match {train.name} (classes or image shape)")
        if list(generator.class_names) != list(train.classes) or tuple(generator.image_shape) != train.image_shape:
            raise ConfigError(f"the generator makes {generator.image_shape} images of {generator.class_names}; "
                              f"the data has {train.image_shape} images of {train.classes}")
        if config.synthetic_label == "teacher" and teacher is None:
            raise ConfigError("synthetic_label='teacher' needs a teacher (--teacher)")
        self.train_data, self.val, self.generator, self.config = as_array_dataset(train), val, generator, config
        self.teacher = teacher.eval() if teacher is not None else None
        self.num_classes = train.num_classes
        self.progress = progress
        self._real = LabelledImages.from_dataset(self.train_data)
        torch.manual_seed(config.seed)
        c, h, w = train.image_shape
        self.model = create_model(config.arch, num_classes=self.num_classes, in_chans=c, image_size=(h, w))
        if config.pretrain_epochs:
            fit(self.model, self._real, self._train_config(config.pretrain_epochs, config.lr, config.seed, warmup=1.0),
                progress=progress, desc="pretrain")
        self.model.eval()
        self._initial_state = copy.deepcopy(self.model.state_dict())
        self.initial_validation = validate(self.model, val)
        self.episode_seed = 0
        self._episodes = 0
        self.reset()

    def _train_config(self, epochs: int, lr: float, seed: int, *, warmup: float) -> TrainConfig:
        return TrainConfig(epochs=epochs, batch_size=self.config.batch_size, lr=lr, seed=seed, warmup_epochs=warmup,
                           device=self.config.device)

    def reset(self, seed: int | None = None) -> Validation:
        """Start an episode: the pretrained classifier, an empty support set, the whole budget."""
        self.model.load_state_dict(self._initial_state)
        self.model.eval()
        self.episode_seed = self._episodes if seed is None else int(seed)
        self._episodes += 1
        self.support = SupportSet(self.num_classes)
        self.history: list[StepResult] = []
        self.validation = self.initial_validation
        return self.validation

    @property
    def used(self) -> int:
        return len(self.support)

    @property
    def done(self) -> bool:
        return self.used >= self.config.budget

    def step_seed(self, step: int) -> int:
        """Seed of a step's images: a function of (run seed, episode seed, step)."""
        return int(np.random.SeedSequence([self.config.seed, self.episode_seed, step]).generate_state(1)[0])

    def _targets(self, prompt: Prompt, images: torch.Tensor) -> np.ndarray:
        mode = self.config.synthetic_label
        if mode == "teacher":
            assert self.teacher is not None
            device = next(self.teacher.parameters()).device
            with torch.no_grad():
                probs = self.teacher(images.to(device).float() / 255.0)
            return probs.float().cpu().numpy()
        target = np.eye(self.num_classes)[prompt.label] if mode == "first" else prompt.mix(self.num_classes)
        return np.repeat(target[None], len(images), axis=0)

    def step(self, prompt: Prompt) -> StepResult:
        """Generate the prompt's images, add them, train on real + synthetic, validate, reward."""
        if self.done:
            raise ConfigError(f"the budget of {self.config.budget} images is spent; reset() to start over")
        step = len(self.history)
        n = min(self.config.images_per_step, self.config.budget - self.used)
        seed = self.step_seed(step)
        images = self.generator.generate([prompt] * n, seed=seed)
        if images.shape != (n, *self.train_data.image_shape) or images.dtype != torch.uint8:
            raise ConfigError(f"the generator returned {tuple(images.shape)} {images.dtype} for {n} prompts, "
                              f"expected uint8 {(n, *self.train_data.image_shape)}")
        text = prompt.text(self.generator.class_names, self.generator.domains)
        targets = self._targets(prompt, images)
        probe = self._probe(images, targets, seed) if self.config.reward_signal == "probe" else None
        self.support.add(images, prompt, targets, text=text, seed=seed, step=step)
        data = LabelledImages.concat([self._real, self.support.labelled()])
        # no warm-up: the classifier is trained already; the cosine decay within the step settles it
        # before it is validated
        cfg = self._train_config(self.config.epochs_per_step, self.config.step_lr, self.config.seed * 1_000 + step,
                                 warmup=0.0)
        trainer = Trainer(self.model, data, cfg)
        for _ in range(self.config.epochs_per_step):
            trainer.run_epoch(progress=False, desc=f"step {step}")
        before, self.validation = self.validation, validate(self.model, self.val)
        reward = compute_reward(*(probe or (before, self.validation)), self.config.entropy_weight)
        self.support.set_reward(step, reward.value)
        result = StepResult(step, prompt, text, seed, n, reward, self.validation)
        self.history.append(result)
        log.info("step %d: %s -> reward %+.4f (val acc %.4f)", step, text, reward.value, self.validation.accuracy)
        return result

    def _probe(self, images: torch.Tensor, targets: np.ndarray, seed: int) -> tuple[Validation, Validation]:
        """``(control, treated)``: the validation numbers of two copies of the classifier after
        ``probe_steps`` SGD steps, one on a batch of real training images, one on the same batch plus
        this step's images. Their difference is what the images teach; the noise of an epoch's
        shuffling, which swamps the step reward of 10 images among a thousand, is common to both."""
        n_real = max(1, self.config.batch_size - len(images))
        pick = torch.randperm(len(self._real), generator=torch.Generator().manual_seed(seed))[:n_real]
        real_x, real_t = self._real.images[pick], self._real.targets[pick]
        treated_x = torch.cat([real_x, images])
        treated_t = torch.cat([real_t, torch.as_tensor(targets, dtype=torch.float32)])
        return (self._probe_copy(real_x, real_t, seed), self._probe_copy(treated_x, treated_t, seed))

    def _probe_copy(self, images: torch.Tensor, targets: torch.Tensor, seed: int) -> Validation:
        device = next(self.model.parameters()).device
        model = copy.deepcopy(self.model).train()  # batch statistics: SGD on a model in eval mode diverges
        opt = torch.optim.SGD(model.parameters(), lr=self.config.probe_lr)
        x, t = images.to(device).float() / 255.0, targets.to(device)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)  # control and treated draw from the same random stream (dropout)
            for _ in range(self.config.probe_steps):
                loss = -(t * torch.log_softmax(model(x), dim=1)).sum(dim=1).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return validate(model, self.val)

    def observation(self) -> np.ndarray:
        """Per-class validation accuracy and the share of the budget used, float32 in [0, 1]."""
        per_class = np.nan_to_num(np.asarray(self.validation.per_class_accuracy, dtype=np.float64), nan=0.0)
        return np.append(per_class, min(1.0, self.used / self.config.budget)).astype(np.float32)

    def favoured_prompts(self, top: int = 5) -> list[dict[str, Any]]:
        """The prompts used most in this episode, with their mean reward."""
        return favoured_prompts([r.to_dict() for r in self.history], top=top)


def favoured_prompts(history: Sequence[dict[str, Any]], top: int = 5) -> list[dict[str, Any]]:
    """Group step records by prompt text: count and mean reward, most used first."""
    groups: dict[str, list[float]] = {}
    for r in history:
        groups.setdefault(r["prompt"], []).append(r["reward"])
    rows = [{"prompt": p, "steps": len(v), "mean_reward": float(np.mean(v))} for p, v in groups.items()]
    return sorted(rows, key=lambda r: (-r["steps"], -r["mean_reward"]))[:top]

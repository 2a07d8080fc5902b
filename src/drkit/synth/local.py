"""The offline generator: a small class-conditional diffusion model trained on the user's data.

A diffusers ``UNet2DModel`` predicts the noise (DDPM training, cosine schedule); DDIM samples in a
few steps with classifier-free guidance. The condition is one vector added to the timestep
embedding (``class_embed_type="identity"``)::

    cond = sum_j w_j * E[class_j] + S[domain]        (w = 0.6, 0.2, 0.2: the first class dominant)

so a prompt of three classes asks for an image between them, as the prompt template does for
Stable Diffusion (Schiavone & Li, §3.3). A domain is a *style* the model learns from the data
itself: during training an image is shown restyled (``STYLES``: sketch = edge map, close-up =
centre crop, blurry = Gaussian blur) with its domain's embedding, so "A sketch of a Bag" means
something without any data beyond the user's own.

A checkpoint is a folder: ``generator.safetensors`` (EMA weights) + ``generator.json``; training
saves ``state.safetensors`` every ``save_every`` steps and a rerun resumes from it (the optimizer's
moments restart).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torchvision.transforms.v2 import functional as F

from .._progress import progress_bar
from ..data import ImageDataset, load_dataset
from ..errors import ConfigError, DataError
from ..inference import best_device
from .generators import Generator, image_seeds, require
from .prompts import DEFAULT_DOMAINS, Prompt

__all__ = ["STYLES", "LocalDiffusionConfig", "LocalGenerator", "fit_local_generator"]

log = logging.getLogger(__name__)

CHECKPOINT, META, STATE = "generator.safetensors", "generator.json", "state.safetensors"


def _sketch(x: torch.Tensor) -> torch.Tensor:
    """Sobel edge magnitude, scaled to [0, 1] per image: a line drawing of the object."""
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]).view(1, 1, 3, 3).repeat(x.shape[1], 1, 1, 1)
    pad = nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
    gx = nn.functional.conv2d(pad, kx, groups=x.shape[1])
    gy = nn.functional.conv2d(pad, kx.transpose(2, 3), groups=x.shape[1])
    mag = (gx**2 + gy**2).sqrt()
    return mag / mag.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)


def _close_up(x: torch.Tensor) -> torch.Tensor:
    """The centre 70 % of the image, enlarged back to full size."""

    h, w = x.shape[-2:]
    ch, cw = max(1, round(0.7 * h)), max(1, round(0.7 * w))
    return F.resize(F.center_crop(x, [ch, cw]), [h, w], antialias=True).clamp(0, 1)


def _blurry(x: torch.Tensor) -> torch.Tensor:
    return F.gaussian_blur(x, [5, 5], [1.2, 1.2])


# domain name -> style (float images (N, C, H, W) in [0, 1] -> same)
STYLES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "photo": lambda x: x, "sketch": _sketch, "close-up photo": _close_up, "blurry photo": _blurry,
}


@dataclass
class LocalDiffusionConfig:
    """Model and training settings of the local generator (defaults: minutes on 2 CPU cores per 1k steps)."""

    width: int = field(default=16, metadata={"help": "UNet base channels (levels: W, 2W, 4W)"})
    train_steps: int = field(default=3000, metadata={"help": "optimisation steps"})
    batch_size: int = field(default=64, metadata={"help": "images per step"})
    lr: float = field(default=1e-3, metadata={"help": "peak AdamW learning rate (warm-up, then cosine)"})
    ema_decay: float = field(default=0.995, metadata={"help": "decay of the weight average that samples"})
    cond_dropout: float = field(default=0.1, metadata={"help": "fraction trained unconditioned (for guidance)"})
    style_prob: float = field(default=0.3, metadata={"help": "fraction of images shown restyled in a random domain"})
    timesteps: int = field(default=1000, metadata={"help": "diffusion steps of training (cosine schedule)"})
    sample_steps: int = field(default=20, metadata={"help": "DDIM steps when sampling"})
    guidance_scale: float = field(default=2.0, metadata={"help": "classifier-free guidance when sampling (1: none)"})
    save_every: int = field(default=500, metadata={"help": "steps between resumable checkpoints"})
    seed: int = field(default=0, metadata={"help": "seed of initialisation, batches, noise and styles"})
    device: str | None = field(default=None, metadata={"help": "cuda, mps or cpu (default: best available)"})

    def __post_init__(self) -> None:
        for name in ("width", "train_steps", "batch_size", "timesteps", "sample_steps", "save_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.width % 4:
            raise ConfigError(f"width must be a multiple of 4 (group norm), got {self.width}")
        if not (0 <= self.cond_dropout < 1 and 0 <= self.style_prob <= 1 and 0 <= self.ema_decay < 1):
            raise ConfigError("cond_dropout and ema_decay must be in [0, 1), style_prob in [0, 1]")
        if self.lr <= 0 or self.guidance_scale < 0:
            raise ConfigError(f"lr must be > 0 and guidance_scale >= 0, got {self.lr}, {self.guidance_scale}")


class ConditionalUNet(nn.Module):
    """``UNet2DModel`` whose timestep embedding gets ``cond = mix @ E + S[domain]`` added."""

    def __init__(self, in_chans: int, size: int, num_classes: int, num_domains: int, width: int) -> None:
        super().__init__()
        self.unet = require("diffusers").UNet2DModel(sample_size=size, in_channels=in_chans, out_channels=in_chans,
                                block_out_channels=(width, 2 * width, 4 * width), layers_per_block=1,
                                down_block_types=("DownBlock2D",) * 3, up_block_types=("UpBlock2D",) * 3,
                                class_embed_type="identity", norm_num_groups=min(8, width // 2))
        dim = 4 * width  # the UNet's time-embedding width
        self.class_embed = nn.Embedding(num_classes, dim)
        self.style_embed = nn.Embedding(num_domains, dim)
        self.null = nn.Parameter(torch.zeros(dim))  # "no condition", for classifier-free guidance

    def condition(self, mix: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        """``mix`` ``(N, classes)`` class weights, ``domain`` ``(N,)`` -> ``(N, dim)``."""
        return mix @ self.class_embed.weight + self.style_embed(domain)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t, class_labels=cond).sample


def _padding(h: int, w: int) -> tuple[int, int]:
    """Rows and columns added (bottom/right) so the three UNet levels divide the image."""
    return (-h) % 4, (-w) % 4


def _restyle(x: torch.Tensor, domain: torch.Tensor, domains: Sequence[str]) -> torch.Tensor:
    out = x.clone()
    for d, name in enumerate(domains):
        sel = domain == d
        if sel.any():
            out[sel] = STYLES[name](x[sel])
    return out


def _schedulers(config: LocalDiffusionConfig) -> tuple[Any, Any]:
    diffusers = require("diffusers")
    ddpm = diffusers.DDPMScheduler(num_train_timesteps=config.timesteps, beta_schedule="squaredcos_cap_v2")
    return ddpm, diffusers.DDIMScheduler.from_config(ddpm.config, clip_sample=True)


class LocalGenerator(Generator):
    """Samples a trained :class:`ConditionalUNet` (use :meth:`load` or :func:`fit_local_generator`)."""

    def __init__(self, model: ConditionalUNet, *, class_names: Sequence[str], domains: Sequence[str],
                 image_shape: tuple[int, int, int], config: LocalDiffusionConfig, device: str | None = None,
                 batch_size: int = 256, source: str | None = None, trained_steps: int = 0,
                 trained_on: str | None = None) -> None:
        self.config = config
        self.device = torch.device(device or config.device) if (device or config.device) else best_device()
        self.model = model.to(self.device).eval()
        self.class_names, self.domains = list(class_names), list(domains)
        self.image_shape = tuple(image_shape)  # type: ignore[assignment]
        self.batch_size, self.source, self.trained_steps = batch_size, source, trained_steps
        self.trained_on = trained_on  # the dataset name it was fitted on
        self._ddim = _schedulers(config)[1]

    @classmethod
    def load(cls, directory: str | os.PathLike[str], *, device: str | None = None, sample_steps: int | None = None,
             guidance_scale: float | None = None, batch_size: int = 256) -> LocalGenerator:
        """A checkpoint folder of :func:`fit_local_generator`; sampling settings may be overridden."""

        root = Path(directory)
        if not (root / META).is_file() or not (root / CHECKPOINT).is_file():
            raise DataError(f"{root} is not a finished local generator (needs {META} and {CHECKPOINT}); "
                            "train one with `drkit synth fit-generator`")
        meta = json.loads((root / META).read_text())
        cfg = LocalDiffusionConfig(**{**meta["config"], **({"sample_steps": sample_steps} if sample_steps else {}),
                                      **({"guidance_scale": guidance_scale} if guidance_scale is not None else {})})
        c, h, w = meta["image_shape"]
        ph, pw = _padding(h, w)
        model = ConditionalUNet(c, max(h + ph, w + pw), len(meta["class_names"]), len(meta["domains"]), cfg.width)
        model.load_state_dict(load_file(str(root / CHECKPOINT)))
        return cls(model, class_names=meta["class_names"], domains=meta["domains"], image_shape=(c, h, w), config=cfg,
                   device=device, batch_size=batch_size, source=str(root), trained_steps=meta["trained_steps"],
                   trained_on=meta["dataset"])

    @torch.no_grad()
    def generate(self, prompts: Sequence[Prompt], *, seed: int) -> torch.Tensor:
        self._check(prompts)
        seeds = image_seeds(seed, len(prompts))
        out = [self._sample(prompts[a : a + self.batch_size], seeds[a : a + self.batch_size])
               for a in range(0, len(prompts), self.batch_size)]
        return torch.cat(out) if out else torch.zeros((0, *self.image_shape), dtype=torch.uint8)

    def _sample(self, prompts: Sequence[Prompt], seeds: Sequence[int]) -> torch.Tensor:
        c, h, w = self.image_shape
        ph, pw = _padding(h, w)
        mix = torch.tensor(np.stack([p.mix(len(self.class_names)) for p in prompts]), dtype=torch.float32)
        domain = torch.tensor([p.domain for p in prompts])
        cond = self.model.condition(mix.to(self.device), domain.to(self.device))
        # each image's starting noise comes from its own seed: independent of the batch it is in
        x = torch.stack([torch.randn(c, h + ph, w + pw, generator=torch.Generator().manual_seed(s)) for s in seeds])
        x = x.to(self.device)
        g = self.config.guidance_scale
        sched = self._ddim
        sched.set_timesteps(self.config.sample_steps)
        for t in sched.timesteps:
            tt = torch.full((len(x),), int(t), device=self.device)
            if g == 1.0:
                eps = self.model(x, tt, cond)
            else:  # classifier-free guidance: one pass over [conditioned; unconditioned]
                e_c, e_u = self.model(torch.cat([x, x]), torch.cat([tt, tt]),
                                      torch.cat([cond, self.model.null.expand_as(cond)])).chunk(2)
                eps = e_u + g * (e_c - e_u)
            x = sched.step(eps, t, x).prev_sample
        x = ((x[:, :, :h, :w] + 1) / 2).clamp(0, 1)
        return (x * 255).round().to(torch.uint8).cpu()

    def describe(self) -> dict[str, Any]:
        return {"kind": "local", "checkpoint": self.source, "trained_steps": self.trained_steps,
                "sample_steps": self.config.sample_steps, "guidance_scale": self.config.guidance_scale}


def _meta(dataset: ImageDataset, domains: Sequence[str], config: LocalDiffusionConfig) -> dict[str, Any]:
    return {"class_names": list(dataset.classes), "domains": list(domains), "image_shape": list(dataset.image_shape),
            "dataset": dataset.name, "num_samples": len(dataset),
            "config": {k: v for k, v in asdict(config).items() if k != "device"}}


def fit_local_generator(data: str | ImageDataset, out: str | os.PathLike[str],
                        config: LocalDiffusionConfig | None = None, *, domains: Sequence[str] = DEFAULT_DOMAINS,
                        progress: bool = True) -> LocalGenerator:
    """Train the local generator on ``data`` into the folder ``out`` and return it.

    A finished checkpoint with the same settings is loaded, not retrained; an interrupted run
    resumes from its last ``state.safetensors``; other settings in ``out`` are an error.
    """

    cfg = config or LocalDiffusionConfig()
    unknown = [d for d in domains if d not in STYLES]
    if unknown or not domains:
        raise ConfigError(f"the local generator knows the domains {sorted(STYLES)}; got {list(domains)} "
                          f"({unknown} unknown)")
    dataset = load_dataset(data)
    root = Path(out)
    meta = _meta(dataset, domains, cfg)
    if (root / META).is_file():
        old = json.loads((root / META).read_text())
        old_settings = {k: v for k, v in old.items() if k not in ("trained_steps", "seconds", "losses")}
        if old_settings != meta:
            differ = sorted(k for k in meta if old_settings.get(k) != meta[k])
            raise ConfigError(f"{root} holds a generator trained with other settings ({', '.join(differ)} differ); "
                              "choose another --out or delete it")
        if old.get("trained_steps") == cfg.train_steps and (root / CHECKPOINT).is_file():
            return LocalGenerator.load(root, device=cfg.device)
    root.mkdir(parents=True, exist_ok=True)

    device = torch.device(cfg.device) if cfg.device else best_device()
    c, h, w = dataset.image_shape
    ph, pw = _padding(h, w)
    images = torch.stack([dataset.image(i) for i in range(len(dataset))]).float() / 255.0
    images = nn.functional.pad(images, (0, pw, 0, ph), mode="replicate") if ph or pw else images
    labels = torch.as_tensor(np.asarray(dataset.labels))
    torch.manual_seed(cfg.seed)
    model = ConditionalUNet(c, max(h + ph, w + pw), dataset.num_classes, len(domains), cfg.width).to(device)
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    start, losses = 0, []
    if (root / STATE).is_file():
        state = load_file(str(root / STATE))
        model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
        ema = {k[4:]: v.to(device) for k, v in state.items() if k.startswith("ema.")}
        start = int(state["step"])
        losses = state["losses"].tolist()
        log.info("resuming the local generator in %s at step %d", root, start)
    ddpm, _ = _schedulers(cfg)
    alphas = ddpm.alphas_cumprod.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    warmup = min(200, cfg.train_steps // 10 + 1)

    def save_state(step: int) -> None:
        tensors = {**{f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                   **{f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.items()},
                   "step": torch.tensor(step), "losses": torch.tensor(losses, dtype=torch.float32)}
        save_file(tensors, str(root / (STATE + ".tmp")))
        (root / (STATE + ".tmp")).replace(root / STATE)

    t0 = time.perf_counter()
    bar = progress_bar(cfg.train_steps, desc="fit generator", unit="step", enabled=progress)
    bar.update(start)
    model.train()
    for step in range(start, cfg.train_steps):
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)  # the batch of step s: a function of (seed, s)
        idx = torch.randint(len(images), (cfg.batch_size,), generator=g)
        x, y = images[idx], labels[idx]
        domain = torch.where(torch.rand(len(idx), generator=g) < cfg.style_prob,
                             torch.randint(len(domains), (len(idx),), generator=g), torch.zeros(len(idx), dtype=torch.long))
        x = (_restyle(x, domain, domains) * 2 - 1).to(device)
        mix = nn.functional.one_hot(y, dataset.num_classes).float().to(device)
        cond = model.condition(mix, domain.to(device))
        drop = (torch.rand(len(idx), generator=g) < cfg.cond_dropout).to(device)
        cond = torch.where(drop[:, None], model.null.expand_as(cond), cond)
        noise = torch.randn(x.shape, generator=g).to(device)
        t = torch.randint(cfg.timesteps, (len(idx),), generator=g).to(device)
        a = alphas[t].view(-1, 1, 1, 1)
        loss = nn.functional.mse_loss(model(a.sqrt() * x + (1 - a).sqrt() * noise, t, cond), noise)
        lr_scale = min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / cfg.train_steps))
        for group in opt.param_groups:
            group["lr"] = cfg.lr * lr_scale
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            decay = min(cfg.ema_decay, (1 + step) / (10 + step))  # a short average early on
            for k, v in model.state_dict().items():
                ema[k].mul_(decay).add_(v.detach(), alpha=1 - decay) if v.dtype.is_floating_point else ema[k].copy_(v)
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-100:]):.4f}", refresh=False)
        if (step + 1) % cfg.save_every == 0 and step + 1 < cfg.train_steps:
            save_state(step + 1)
    bar.close()
    model.load_state_dict(ema)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(root / CHECKPOINT))
    curve = [float(np.mean(losses[i : i + 100])) for i in range(0, len(losses), 100)]
    (root / META).write_text(json.dumps({**meta, "trained_steps": cfg.train_steps,
                                         "seconds": time.perf_counter() - t0, "losses": curve}, indent=2) + "\n")
    (root / STATE).unlink(missing_ok=True)
    return LocalGenerator(model, class_names=dataset.classes, domains=domains, image_shape=(c, h, w), config=cfg,
                          device=cfg.device, source=str(root), trained_steps=cfg.train_steps, trained_on=dataset.name)

"""Small, fast stand-ins for the synth tests: a class-mean generator and a tiny builder on digits."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pytest
import torch

for _extra in ("diffusers", "transformers", "gymnasium", "stable_baselines3"):  # drkit[synth]
    pytest.importorskip(_extra)

from drkit.data import ArrayDataset, load_dataset  # noqa: E402
from drkit.synth import Generator, Prompt, SupportSetBuilder, SynthConfig, split_validation  # noqa: E402
from drkit.synth.generators import image_seeds  # noqa: E402


class MeanGenerator(Generator):
    """An image of a prompt = its class mixture of the class-mean images, plus seeded noise; the
    second domain inverts the image. Deterministic per (seed, index, prompt)."""

    def __init__(self, data: ArrayDataset, domains: Sequence[str] = ("photo", "negative")) -> None:
        self.class_names, self.domains = list(data.classes), list(domains)
        self.image_shape = data.image_shape
        imgs = data.images.astype(np.float64)
        self.means = np.stack([imgs[data.labels == c].mean(0) for c in range(data.num_classes)])
        self.calls = 0

    def generate(self, prompts: Sequence[Prompt], *, seed: int) -> torch.Tensor:
        self._check(prompts)
        self.calls += 1
        out = []
        for p, s in zip(prompts, image_seeds(seed, len(prompts)), strict=True):
            img = np.tensordot(p.mix(len(self.class_names)), self.means, axes=1)
            img = img + np.random.default_rng(s).normal(0, 20, img.shape)
            if p.domain == 1:
                img = 255 - img
            out.append(np.clip(img, 0, 255).round().astype(np.uint8))
        return torch.from_numpy(np.stack(out)) if out else torch.zeros((0, *self.image_shape), dtype=torch.uint8)


@lru_cache(maxsize=1)
def _digits() -> ArrayDataset:
    return load_dataset("digits")  # type: ignore[return-value]


def digits_split(n_train: int = 200, n_val: int = 100) -> tuple[ArrayDataset, ArrayDataset]:
    """Fresh (train, val) arrays from the first ``n_train + n_val`` digits (safe to modify)."""
    pool = _digits().subset(np.arange(n_train + n_val), name="digits-pool")
    return split_validation(pool, n_val / (n_train + n_val), seed=0)


def tiny_config(**kw) -> SynthConfig:
    base = {"budget": 20, "images_per_step": 5, "pretrain_epochs": 1, "arch": "smallcnn-4", "batch_size": 64,
            "device": "cpu"}
    return SynthConfig(**{**base, **kw})


def tiny_builder(**kw) -> SupportSetBuilder:
    train, val = digits_split()
    return SupportSetBuilder(train, val, MeanGenerator(train), tiny_config(**kw))


def tiny_sd_pipeline(tmp_dir):
    """A randomly initialised Stable Diffusion pipeline small enough for CPU tests, built entirely in
    code: a character-level CLIP tokenizer from an in-code vocabulary (no download)."""
    import json
    import string
    from pathlib import Path

    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in string.ascii_lowercase + string.digits + "-/,.":
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    d = Path(tmp_dir)
    (d / "vocab.json").write_text(json.dumps(vocab))
    (d / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt"), model_max_length=77)
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32,
                                                num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=77,
                                                bos_token_id=0, eos_token_id=1, pad_token_id=1, projection_dim=16))
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32),
                                layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
                                attention_head_dim=2, norm_num_groups=8)
    vae = AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=(8, 16), latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=8, sample_size=16)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)

import numpy as np
import pytest
import torch
from _synth_fixtures import digits_split, tiny_config, tiny_sd_pipeline

from drkit.errors import ConfigError
from drkit.synth import DiffusersGenerator, Prompt, SupportSetBuilder, load_generator
from drkit.synth.generators import image_seeds, to_image_shape


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny-sd")
    tiny_sd_pipeline(d).save_pretrained(d / "pipe")
    return d / "pipe"


def _gen(sd_dir, **kw) -> DiffusersGenerator:
    train, _ = digits_split()
    return load_generator(f"diffusers:{sd_dir}", class_names=train.classes, image_shape=train.image_shape,
                          domains=["photo", "sketch"], device="cpu", steps=2, guidance_scale=2.0, resolution=16, **kw)


def test_seeds_are_per_image():
    assert image_seeds(5, 3) == image_seeds(5, 5)[:3]
    assert len(set(image_seeds(5, 100))) == 100 and image_seeds(6, 1) != image_seeds(5, 1)
    with pytest.raises(ConfigError):
        image_seeds(-1, 1)


def test_to_image_shape_resizes_and_converts_channels():
    rgb = torch.zeros(2, 3, 16, 16)
    rgb[:, 1] = 1.0  # pure green
    gray = to_image_shape(rgb, (1, 8, 8))
    assert gray.shape == (2, 1, 8, 8) and gray.dtype == torch.uint8 and int(gray[0, 0, 0, 0]) == round(0.587 * 255)
    assert to_image_shape(torch.ones(1, 1, 4, 4), (3, 4, 4)).shape == (1, 3, 4, 4)


def test_tiny_offline_pipeline_is_seeded_and_fits_the_dataset(sd_dir, one_thread):
    gen = _gen(sd_dir)
    prompts = [Prompt(0, (1, 2, 3)), Prompt(1, (4, 4, 4)), Prompt(0, (1, 2, 3))]
    a = gen.generate(prompts, seed=7)
    assert a.shape == (3, 1, 8, 8) and a.dtype == torch.uint8
    torch.testing.assert_close(gen.generate(prompts, seed=7), a)  # same seed, same images
    assert not torch.equal(gen.generate(prompts, seed=8), a)
    assert not torch.equal(a[0], a[2])  # same prompt, another image index: another image
    assert gen.describe()["kind"] == "diffusers" and gen.describe()["steps"] == 2


def test_tiny_offline_pipeline_runs_the_loop_end_to_end(sd_dir, one_thread):
    train, val = digits_split()
    builder = SupportSetBuilder(train, val, _gen(sd_dir), tiny_config(budget=6, images_per_step=3))
    for c in (2, 5):
        r = builder.step(Prompt(1, (c, 0, 9)))
        assert r.images == 3 and np.isfinite(r.reward.value)
    assert builder.done and list(builder.support.labels) == [2, 2, 2, 5, 5, 5]


def test_missing_pipeline_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="local files only"):
        load_generator(f"diffusers:{tmp_path / 'nothing'}", class_names=["a", "b"], image_shape=(1, 8, 8))
    with pytest.raises(ConfigError, match="unknown generator"):
        load_generator("gan:x", class_names=["a", "b"], image_shape=(1, 8, 8))
    with pytest.raises(ConfigError):
        DiffusersGenerator(object(), ["a", "b"], (1, 8, 8), steps=0)

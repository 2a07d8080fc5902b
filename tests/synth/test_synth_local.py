import json

import pytest
import torch
from _synth_fixtures import digits_split

from drkit.errors import ConfigError, DataError
from drkit.synth import (
    LocalDiffusionConfig,
    LocalGenerator,
    Prompt,
    fit_local_generator,
    load_generator,
)
from drkit.synth.local import STYLES

CFG = {"width": 8, "train_steps": 6, "batch_size": 16, "sample_steps": 2, "save_every": 3, "device": "cpu"}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    train, _ = digits_split()
    out = tmp_path_factory.mktemp("gen") / "g"
    yield train, out, fit_local_generator(train, out, LocalDiffusionConfig(**CFG), progress=False)
    torch.set_num_threads(threads)


def test_styles_keep_shape_and_range():
    x = torch.rand(3, 1, 8, 8)
    for name, fn in STYLES.items():
        y = fn(x)
        assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1, name
    assert torch.equal(STYLES["photo"](x), x)


def test_fit_writes_a_loadable_checkpoint(fitted):
    train, out, gen = fitted
    meta = json.loads((out / "generator.json").read_text())
    assert meta["trained_steps"] == 6 and meta["class_names"] == train.classes and not (out / "state.safetensors").exists()
    prompts = [Prompt(0, (c, c, c)) for c in range(10)] + [Prompt(1, (3, 5, 8))]
    a = gen.generate(prompts, seed=4)
    assert a.shape == (11, 1, 8, 8) and a.dtype == torch.uint8
    loaded = load_generator(f"local:{out}", class_names=train.classes, image_shape=train.image_shape)
    assert isinstance(loaded, LocalGenerator)
    torch.testing.assert_close(loaded.generate(prompts, seed=4), a)


def test_images_do_not_depend_on_the_batch(fitted):
    _, _, gen = fitted
    prompts = [Prompt(c % 4, (c, 1, 2)) for c in range(6)]
    whole = gen.generate(prompts, seed=1)
    gen.batch_size = 4
    try:
        assert torch.equal(gen.generate(prompts, seed=1), whole)
    finally:
        gen.batch_size = 256
    assert not torch.equal(gen.generate(prompts, seed=2), whole)


def test_refit_reuses_and_other_settings_raise(fitted):
    train, out, _ = fitted
    stamp = (out / "generator.safetensors").stat().st_mtime_ns
    fit_local_generator(train, out, LocalDiffusionConfig(**CFG), progress=False)
    assert (out / "generator.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match="other settings"):
        fit_local_generator(train, out, LocalDiffusionConfig(**{**CFG, "width": 12}), progress=False)


def test_interrupted_fit_resumes_from_its_state(tmp_path, monkeypatch, one_thread):
    import drkit.synth.local as local

    train, _ = digits_split()
    calls = []
    real_clip = local.nn.utils.clip_grad_norm_

    def clip(params, norm):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt  # killed during step 5 of 6, after the checkpoint of step 3
        return real_clip(params, norm)

    monkeypatch.setattr(local.nn.utils, "clip_grad_norm_", clip)
    with pytest.raises(KeyboardInterrupt):
        fit_local_generator(train, tmp_path / "g", LocalDiffusionConfig(**CFG), progress=False)
    assert (tmp_path / "g" / "state.safetensors").is_file() and not (tmp_path / "g" / "generator.json").exists()
    calls.clear()
    gen = fit_local_generator(train, tmp_path / "g", LocalDiffusionConfig(**CFG), progress=False)
    assert len(calls) == 3 and gen.trained_steps == 6  # steps 4..6 only
    assert not (tmp_path / "g" / "state.safetensors").exists()


def test_bad_settings_raise(tmp_path):
    train, _ = digits_split()
    with pytest.raises(ConfigError, match="domains"):
        fit_local_generator(train, tmp_path / "g", LocalDiffusionConfig(**CFG), domains=["watercolor"])
    with pytest.raises(ConfigError):
        LocalDiffusionConfig(width=6)
    with pytest.raises(DataError, match="fit-generator"):
        LocalGenerator.load(tmp_path)
    with pytest.raises(DataError):
        load_generator(f"local:{tmp_path}", class_names=["a"], image_shape=(1, 8, 8))


def test_a_generator_for_other_data_is_refused(fitted):
    train, out, _ = fitted
    with pytest.raises(ConfigError, match="classes"):
        load_generator(f"local:{out}", class_names=train.classes[::-1], image_shape=train.image_shape)
    with pytest.raises(ConfigError, match="images"):
        load_generator(f"local:{out}", class_names=train.classes, image_shape=(1, 28, 28))

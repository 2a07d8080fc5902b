"""The trainer's recipe knobs (label smoothing, AugMix, bf16), ``--init`` from raw timm weights,
architectures checked when built, and random-weight teachers refused."""

import json

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

import drkit
from drkit.cli.main import main
from drkit.errors import ConfigError
from drkit.models import create_model
from drkit.training import loop
from drkit.training.fresh import FreshAugmented
from drkit.training.loop import TrainConfig, Trainer, has_attention, resolve_bf16
from drkit.training.losses import soft_target_cross_entropy
from drkit.training.runs import _init_from, train_run


def test_label_smoothing_is_a_mix_with_the_uniform_target(digits60):
    model = create_model("smallcnn-4", num_classes=10, in_chans=1, image_size=(8, 8))
    trainer = Trainer(model, FreshAugmented(digits60, "cropflip"), TrainConfig(epochs=1, label_smoothing=0.2,
                                                                                 device="cpu"))
    logits = torch.randn(5, 10)
    target = torch.nn.functional.one_hot(torch.arange(5), 10).float()
    smoothed = 0.8 * target + 0.2 / 10
    torch.testing.assert_close(trainer._loss(logits, target), soft_target_cross_entropy(logits, smoothed))
    with pytest.raises(ConfigError, match="label_smoothing"):
        TrainConfig(label_smoothing=1.0)


def test_augmix_views_are_a_pure_function_of_seed_index_epoch(digits60):
    a = FreshAugmented(digits60, "cropflip", seed=3, augmix=True)
    b = FreshAugmented(digits60, "cropflip", seed=3, augmix=True)
    plain = FreshAugmented(digits60, "cropflip", seed=3)
    torch.manual_seed(123)
    x1 = a[5][0]
    torch.manual_seed(999)  # the global stream does not matter, and is left as it was
    state = torch.random.get_rng_state()
    x2 = b[5][0]
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(x1, x2)
    # AugMix changes most views (a weak chain on an 8×8 digit can leave one as it was)
    assert sum(not torch.equal(a[i][0], plain[i][0]) for i in range(10)) >= 7
    epoch0 = [a[i][0] for i in range(10)]
    a.set_epoch(1)
    assert sum(not torch.equal(a[i][0], x) for i, x in enumerate(epoch0)) >= 7


def test_precision_settings():
    with pytest.raises(ConfigError, match="precision must be"):
        TrainConfig(precision="fp16")
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_bf16("bf16", cpu) and not resolve_bf16("fp32", cpu) and not resolve_bf16("auto", cuda)
    assert TrainConfig().precision == "auto"


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bf16_for_convnets_only_on_a_native_bf16_cpu(monkeypatch, native):
    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    cnn = create_model("smallcnn-4", num_classes=10, in_chans=1, image_size=(28, 28))
    vit = create_model("vit-mini-1", num_classes=10, in_chans=1, image_size=(28, 28))
    mha = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.MultiheadAttention(8, 2))
    assert has_attention(vit) and has_attention(mha) and not has_attention(cnn)
    assert resolve_bf16("auto", cpu, cnn) is native
    assert not resolve_bf16("auto", cpu, vit) and not resolve_bf16("auto", cpu, mha)
    assert resolve_bf16("bf16", cpu, vit)  # asked for explicitly: given


def test_bf16_training_runs_and_resumes_as_fp32_does(digits60, tmp_path):
    m = train_run(digits60, tmp_path / "r", arch="smallcnn-4", mode="erm", policy="cropflip",
                  config=TrainConfig(epochs=2, precision="bf16", device="cpu"), progress=False)
    assert len(m["epochs"]) == 2 and all(np.isfinite(e["loss"]) for e in m["epochs"])
    assert "precision" not in json.loads((tmp_path / "r" / "config.json").read_text())["train"]


def test_init_takes_a_raw_timm_state_dict_and_adapts_the_rgb_stem(tmp_path):
    torch.manual_seed(0)
    rgb = timm.create_model("test_resnet", num_classes=1000, in_chans=3)
    path = tmp_path / "raw.safetensors"
    save_file({k: v.contiguous() for k, v in rgb.state_dict().items()}, str(path))  # no drkit `model.` prefix
    torch.manual_seed(1)
    model = create_model("test_resnet", num_classes=10, in_chans=1, image_size=(28, 28))
    skipped = _init_from(model, path)
    assert skipped == ["model.fc.bias", "model.fc.weight"]  # only the head is new
    own = model.state_dict()
    assert torch.equal(own["model.layer1.0.conv1.weight"], rgb.state_dict()["layer1.0.conv1.weight"])
    torch.testing.assert_close(own["model.conv1.0.weight"], rgb.state_dict()["conv1.0.weight"].sum(1, keepdim=True))
    with pytest.raises(ConfigError, match="no such run directory or weights file"):
        _init_from(model, tmp_path / "missing.safetensors")


def test_an_architecture_that_cannot_take_the_data_fails_before_teachers_load(digits60, tmp_path):
    with pytest.raises(ConfigError, match=r"convnext_atto cannot take 1×8×8 images .*smallcnn-W"):
        train_run(digits60, tmp_path / "r", arch="convnext_atto", mode="kd", teachers=["run:/nonexistent"],
                  progress=False)
    assert not (tmp_path / "r").exists()


@pytest.fixture()
def npz_data(tmp_path) -> str:
    ds = drkit.load_dataset("digits").subset(np.arange(40))
    path = tmp_path / "digits40.npz"
    np.savez(path, x=ds.images[:, 0], y=ds.labels)
    return f"npz:{path}"


def test_a_random_weight_teacher_is_refused_unless_asked_for(npz_data, tmp_path, capsys):
    assert main(["reinforce", npz_data, "--teacher", "timm:test_resnet", "--num-augs", "1",
                 "--out", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err
    assert "random weights gives meaningless soft labels" in err and "drkit teach" in err
    assert "timm:test_resnet: not evaluated" in err  # the teacher check came first
    assert not (tmp_path / "s").exists()
    assert main(["reinforce", npz_data, "--teacher", "timm:test_resnet", "--num-augs", "1", "--allow-random-teacher",
                 "--out", str(tmp_path / "s"), "--quiet"]) == 0
    assert drkit.Store.open(tmp_path / "s").num_augs == 1

"""Pretrained weights for timm architectures (``NAME@pretrained[:FILE]``), offline: a local file in
timm's pretrained format, and the Hugging Face cache layout timm reads with HF_HUB_OFFLINE."""

import pytest
import timm
import torch
from safetensors.torch import save_file

from drkit.errors import ConfigError, TeacherError
from drkit.models import ArchSpec, create_model, weights_info
from drkit.reinforcement.teachers import load_teacher


@pytest.fixture(scope="module")
def rgb_weights(tmp_path_factory):
    """An RGB 1000-class test_resnet state dict, saved as timm's hub saves it (model.safetensors)."""
    torch.manual_seed(0)
    reference = timm.create_model("test_resnet", pretrained=False)
    path = tmp_path_factory.mktemp("weights") / "model.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    return path, reference.state_dict()


def test_arch_spec_parses_the_pretrained_marker():
    assert ArchSpec.parse("resnet18") == ArchSpec("resnet18")
    assert ArchSpec.parse("convnext_tiny.fb_in22k@pretrained") == ArchSpec("convnext_tiny.fb_in22k", True, None)
    assert ArchSpec.parse("resnet18@pretrained:/w/model.safetensors") == ArchSpec("resnet18", True, "/w/model.safetensors")
    assert str(ArchSpec.parse("resnet18@pretrained:x.safetensors")) == "resnet18@pretrained:x.safetensors"
    for bad in ("resnet18@", "resnet18@weights.pt", "@pretrained", "resnet18@pretrained:"):
        with pytest.raises(ConfigError, match="NAME@pretrained"):
            ArchSpec.parse(bad)
    with pytest.raises(ConfigError, match="no pretrained weights"):
        create_model("smallcnn-8@pretrained", num_classes=10, in_chans=1, image_size=(28, 28))


def test_local_pretrained_file_backbone_unchanged_head_new_grayscale_stem_adapted(rgb_weights):
    path, reference = rgb_weights
    torch.manual_seed(1)
    model = create_model(f"test_resnet@pretrained:{path}", num_classes=10, in_chans=1, image_size=(28, 28))
    own = model.model.state_dict()
    for k, v in reference.items():
        if k.startswith("fc.") or k == "conv1.0.weight":
            continue
        assert torch.equal(own[k], v), k  # the backbone arrives unchanged
    # timm's in_chans adaptation: the RGB stem summed over its channels
    torch.testing.assert_close(own["conv1.0.weight"], reference["conv1.0.weight"].sum(1, keepdim=True))
    assert own["fc.weight"].shape == (10, reference["fc.weight"].shape[1])  # a new head for 10 classes
    info = weights_info(model)
    assert info == {"weights": "pretrained", "source": str(path), "pretrained_classes": 1000, "new_head": True}
    assert weights_info(create_model("test_resnet", num_classes=10, in_chans=1, image_size=(28, 28))) == {
        "weights": "random"}


def test_a_head_that_fits_is_kept(rgb_weights):
    path, reference = rgb_weights
    model = create_model(f"test_resnet@pretrained:{path}", num_classes=1000, in_chans=3, image_size=(64, 64))
    assert torch.equal(model.model.state_dict()["fc.weight"], reference["fc.weight"])
    assert weights_info(model)["new_head"] is False


def test_pretrained_teacher_with_a_new_head_is_refused_and_points_to_teach(rgb_weights):
    path, _ = rgb_weights
    with pytest.raises(TeacherError, match=r"new 10-class head .* `drkit teach DATA --arch test_resnet@pretrained"):
        load_teacher(f"timm:test_resnet@pretrained:{path}", num_classes=10, in_chans=1, image_size=(28, 28))
    model, desc = load_teacher(f"timm:test_resnet@pretrained:{path}", num_classes=1000, in_chans=3,
                               image_size=(64, 64))
    assert desc["kind"] == "timm" and model.eval()(torch.rand(1, 3, 64, 64)).shape == (1, 1000)


def test_a_pickle_is_never_loaded_as_pretrained_weights(tmp_path):
    bad = tmp_path / "model.pth"
    torch.save({"conv1.0.weight": torch.zeros(1), "obj": object()}, str(bad))
    with pytest.raises(TeacherError, match="weights only"):
        create_model(f"test_resnet@pretrained:{bad}", num_classes=10, in_chans=1, image_size=(28, 28))


def _offline_hub(monkeypatch, cache):
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))


def test_offline_without_the_file_says_which_file_to_place_where(monkeypatch, tmp_path):
    _offline_hub(monkeypatch, tmp_path / "hub")
    with pytest.raises(ConfigError) as e:
        create_model("test_resnet.r160_in1k@pretrained", num_classes=10, in_chans=1, image_size=(28, 28))
    msg = str(e.value)
    assert "HF_HUB_OFFLINE is set" in msg and "model.safetensors" in msg and "timm/test_resnet.r160_in1k" in msg
    assert "test_resnet.r160_in1k@pretrained:PATH/TO/model.safetensors" in msg
    assert "models--timm--test_resnet.r160_in1k" in msg


def test_offline_the_local_hugging_face_cache_is_used(monkeypatch, tmp_path, rgb_weights):
    path, reference = rgb_weights
    repo = tmp_path / "hub" / "models--timm--test_resnet.r160_in1k"
    snap = repo / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (snap / "model.safetensors").write_bytes(path.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    _offline_hub(monkeypatch, tmp_path / "hub")
    model = create_model("test_resnet.r160_in1k@pretrained", num_classes=10, in_chans=3, image_size=(32, 32))
    assert torch.equal(model.model.state_dict()["layer1.0.conv1.weight"], reference["layer1.0.conv1.weight"])
    assert weights_info(model)["new_head"] is True

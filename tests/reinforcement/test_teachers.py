"""Teachers: the ensemble's mean softmax, spec strings, and checkpoint loading that never unpickles."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from drkit import TeacherEnsemble, TeacherError, load_teacher
from drkit.inference import best_device
from drkit.models import Normalize, SmallCNN, create_model, load_state_dict

# torch.jit (TorchScript) is deprecated in recent torch but still what ``torchscript:`` loads
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:DeprecationWarning")


class _Fixed(nn.Module):
    """Returns given logits whatever the input (batch size taken from the input)."""

    def __init__(self, logits: torch.Tensor, as_tuple: bool = False) -> None:
        super().__init__()
        self.logits, self.as_tuple = logits, as_tuple

    def forward(self, x: torch.Tensor):
        out = self.logits[: x.shape[0]]
        return (out, "aux") if self.as_tuple else out


class Gadget:
    """A custom class: pickling an instance of it puts code in a checkpoint."""

    def __init__(self) -> None:
        self.payload = 1


def _x(b: int = 2, c: int = 1, h: int = 8, w: int = 8) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(0))


# --------------------------------------------------------------------------- ensemble


def test_ensemble_averages_tempered_softmax():
    a = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    b = torch.tensor([[-1.0, 4.0, 0.0], [1.0, -2.0, 0.0]])
    ens = TeacherEnsemble([_Fixed(a), _Fixed(b, as_tuple=True)], temperature=2.0)
    out = ens(_x())
    manual = []
    for la, lb in zip(a.tolist(), b.tolist(), strict=True):
        ea = [pow(2.718281828459045, v / 2) for v in la]
        eb = [pow(2.718281828459045, v / 2) for v in lb]
        manual.append([(pa / sum(ea) + pb / sum(eb)) / 2 for pa, pb in zip(ea, eb, strict=True)])
    torch.testing.assert_close(out, torch.tensor(manual), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(out.sum(-1), torch.ones(2))
    # temperature 1 is sharper than temperature 2
    sharp = TeacherEnsemble([_Fixed(a), _Fixed(b)], temperature=1.0)(_x())
    assert (sharp.max(-1).values > out.max(-1).values).all()


def test_ensemble_of_one_is_its_softmax():
    logits = torch.randn(4, 5, generator=torch.Generator().manual_seed(1))
    out = TeacherEnsemble([_Fixed(logits)])(_x(4))
    torch.testing.assert_close(out, torch.softmax(logits, -1))
    assert out.dtype == torch.float32 and not out.requires_grad


def test_ensemble_stays_in_eval_mode_without_gradients():
    torch.manual_seed(0)
    member = SmallCNN(1, 10, width=4)
    ens = TeacherEnsemble([member])
    ens.train()
    assert not ens.training and not member.training
    x = _x(3).requires_grad_(True)
    out = ens(x)
    assert out.shape == (3, 10) and not out.requires_grad
    assert torch.equal(out, ens(x))  # eval-mode BatchNorm: deterministic


def test_ensemble_errors():
    with pytest.raises(TeacherError, match="at least one member"):
        TeacherEnsemble([])
    with pytest.raises(TeacherError, match="temperature must be > 0"):
        TeacherEnsemble([_Fixed(torch.zeros(1, 2))], temperature=0.0)


def test_best_device_here_is_cpu_or_an_accelerator():
    assert best_device().type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        assert best_device().type in ("cpu", "mps")


def test_normalize_wrapper():
    inner = nn.Identity()
    norm = Normalize(inner, [0.5, 0.25], [0.5, 2.0])
    x = torch.ones(1, 2, 1, 1)
    torch.testing.assert_close(norm(x), torch.tensor([[[[1.0]], [[0.375]]]]))


# --------------------------------------------------------------------------- spec strings


def test_module_passes_through():
    torch.manual_seed(0)
    m = SmallCNN(1, 10, width=4)
    model, desc = load_teacher(m, num_classes=10, in_chans=1)
    assert model is m
    assert desc == {"kind": "module", "class": "SmallCNN", "parameters": sum(p.numel() for p in m.parameters())}


def test_python_spec():
    model, desc = load_teacher("python:_teacher_zoo:tiny_cnn", num_classes=7, in_chans=3)
    assert isinstance(model, SmallCNN) and model.head.out_features == 7
    assert desc["kind"] == "python" and desc["spec"] == "python:_teacher_zoo:tiny_cnn"
    assert desc["parameters"] == sum(p.numel() for p in model.parameters())
    again, _ = load_teacher("python:_teacher_zoo:tiny_cnn", num_classes=7, in_chans=3)
    for (k, v), (_, w) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(v, w), k  # seeded: the same weights every time
    assert model.eval()(_x(2, 3)).shape == (2, 7)


def test_torchscript_spec(tmp_path):
    torch.manual_seed(0)
    m = SmallCNN(1, 4, width=4).eval()
    path = tmp_path / "teacher.pt"
    torch.jit.script(m).save(str(path))
    model, desc = load_teacher(f"torchscript:{path}", num_classes=4, in_chans=1)
    assert desc["kind"] == "torchscript" and desc["parameters"] == sum(p.numel() for p in m.parameters())
    x = _x(2)
    torch.testing.assert_close(model(x), m(x))


def test_timm_spec_with_safetensors_checkpoint(tmp_path):
    import timm

    torch.manual_seed(0)
    reference = timm.create_model("resnet18", pretrained=False, num_classes=3, in_chans=1).eval()
    ckpt = tmp_path / "r18.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(ckpt))
    torch.manual_seed(1)  # the loaded weights must come from the checkpoint, not the seed
    model, desc = load_teacher(f"timm:resnet18@{ckpt}", num_classes=3, in_chans=1)
    assert isinstance(model, Normalize) and desc["kind"] == "timm"
    for k, v in reference.state_dict().items():
        assert torch.equal(model.model.state_dict()[k], v), k
    model.eval()
    x = _x(2, 1, 32, 32)
    with torch.no_grad():
        # 1-channel: the mean of timm's RGB mean/std
        mean, std = model.mean.flatten(), model.std.flatten()
        assert mean.shape == (1,) and abs(float(mean[0]) - sum((0.485, 0.456, 0.406)) / 3) < 1e-6
        torch.testing.assert_close(model(x), reference((x - mean.view(1, 1, 1, 1)) / std.view(1, 1, 1, 1)))


def test_timm_checkpoint_of_another_shape_is_a_teacher_error(tmp_path):
    import timm

    ckpt = tmp_path / "r18.safetensors"
    save_file(timm.create_model("resnet18", num_classes=10, in_chans=1).state_dict(), str(ckpt))
    with pytest.raises(TeacherError, match="does not fit timm:resnet18 with 5 classes"):
        load_teacher(f"timm:resnet18@{ckpt}", num_classes=5, in_chans=1)
    partial = tmp_path / "partial.safetensors"
    state = timm.create_model("resnet18", num_classes=10, in_chans=1).state_dict()
    save_file({k: v for k, v in state.items() if not k.startswith("fc.")}, str(partial))
    with pytest.raises(TeacherError, match=r"missing \['fc.weight'"):
        load_teacher(f"timm:resnet18@{partial}", num_classes=10, in_chans=1)


def test_timm_without_weights_is_an_error_unless_allowed(caplog):
    with pytest.raises(TeacherError, match="random weights gives meaningless soft labels.*drkit teach"):
        load_teacher("timm:resnet18", num_classes=3, in_chans=3)
    model, _ = load_teacher("timm:resnet18", num_classes=3, in_chans=3, allow_random=True)
    assert "random (allowed for cost measurements only)" in caplog.text
    assert model.eval()(_x(1, 3, 32, 32)).shape == (1, 3)


def _write_run(root, weights: dict[str, torch.Tensor]) -> None:
    root.mkdir()
    (root / "config.json").write_text(json.dumps(
        {"arch": "smallcnn-4", "num_classes": 10, "in_chans": 1, "image_size": [8, 8]}))
    save_file(weights, str(root / "model.safetensors"))


def test_run_spec(tmp_path):
    torch.manual_seed(0)
    m = create_model("smallcnn-4", num_classes=10, in_chans=1, image_size=(8, 8))
    _write_run(tmp_path / "run", m.state_dict())
    model, desc = load_teacher(f"run:{tmp_path / 'run'}", num_classes=10, in_chans=1)
    assert desc["kind"] == "run"
    m.eval(), model.eval()
    torch.testing.assert_close(model(_x()), m(_x()))

    torch.manual_seed(0)
    other = create_model("smallcnn-4", num_classes=3, in_chans=1, image_size=(8, 8))
    _write_run(tmp_path / "other", other.state_dict())
    with pytest.raises(TeacherError, match="does not fit"):
        load_teacher(f"run:{tmp_path / 'other'}", num_classes=10, in_chans=1)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("hub:resnet18", "unknown teacher 'hub:resnet18'"),
        ("resnet18", "unknown teacher"),
        ("timm:", "unknown teacher"),
        ("python:_teacher_zoo", "unknown teacher"),
        ("python:a:b:c", "unknown teacher"),
        ("python:_teacher_zoo:no_such_callable", "cannot import no_such_callable from _teacher_zoo"),
        ("python:no_such_module_xyz:fn", "is it on PYTHONPATH"),
        ("python:_teacher_zoo:not_a_module", "returned dict, not an nn.Module"),
        ("timm:no_such_architecture_xyz", "timm cannot create 'no_such_architecture_xyz'"),
        ("timm:resnet18@/nonexistent/weights.safetensors", "does not exist"),
        ("torchscript:/nonexistent/model.pt", "cannot load TorchScript archive"),
        ("run:/nonexistent/run", "is not a finished drkit run"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(TeacherError, match=message):
        load_teacher(spec, num_classes=10, in_chans=1)


def test_torchscript_spec_on_a_non_archive(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torchscript archive")
    with pytest.raises(TeacherError, match="cannot load TorchScript archive"):
        load_teacher(f"torchscript:{junk}", num_classes=10, in_chans=1)


# --------------------------------------------------------------------------- checkpoints


def test_load_state_dict_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(2), "gadget": Gadget()}, str(path))
    with pytest.raises(TeacherError, match="never unpickles"):
        load_state_dict(path)


def test_load_state_dict_refuses_a_pickled_module(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "model.pt"
    torch.save(SmallCNN(1, 2, width=4), str(path))
    with pytest.raises(TeacherError, match="as weights only"):
        load_state_dict(path)


@pytest.mark.parametrize("wrapper", ["state_dict", "model", "model_state_dict"])
def test_load_state_dict_unwraps_and_strips_module_prefix(tmp_path, wrapper):
    w = {"module.head.weight": torch.arange(6.0).view(2, 3), "module.head.bias": torch.ones(2)}
    path = tmp_path / "ckpt.pth"
    torch.save({wrapper: w, "epoch": 3, "optimizer": {"lr": 0.1}}, str(path))
    state = load_state_dict(path)
    assert set(state) == {"head.weight", "head.bias"}
    assert torch.equal(state["head.weight"], w["module.head.weight"])


def test_load_state_dict_safetensors(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"a": torch.arange(4.0)}, str(path))
    assert torch.equal(load_state_dict(path)["a"], torch.arange(4.0))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 16)
    with pytest.raises(TeacherError, match="cannot read checkpoint"):
        load_state_dict(bad)


def test_load_state_dict_errors(tmp_path):
    with pytest.raises(TeacherError, match="does not exist"):
        load_state_dict(tmp_path / "absent.pt")
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), str(path))
    with pytest.raises(TeacherError, match="does not hold a state_dict"):
        load_state_dict(path)

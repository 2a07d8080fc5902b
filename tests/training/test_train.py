"""Trainer: exact resume from a checkpoint, online-KD targets, ERM targets for mixing policies."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import drkit
from drkit.errors import ConfigError
from drkit.inference import predict_probs
from drkit.models import SmallCNN
from drkit.training.fresh import FreshAugmented
from drkit.training.loop import TrainConfig, Trainer


@pytest.fixture(scope="module")
def base() -> drkit.ImageDataset:
    return drkit.load_dataset("digits").subset(np.arange(64))


def _model() -> nn.Module:
    torch.manual_seed(0)
    return SmallCNN(1, 10, width=4)


def _state(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_resume_from_checkpoint_is_exact(base, tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=16, seed=1, device="cpu")
    straight = Trainer(_model(), FreshAugmented(base, "randaugment", seed=1), cfg)
    for _ in range(3):
        straight.run_epoch(progress=False)

    first = Trainer(_model(), FreshAugmented(base, "randaugment", seed=1), cfg)
    first.run_epoch(progress=False)
    first.save(tmp_path)
    resumed = Trainer(_model(), FreshAugmented(base, "randaugment", seed=1), cfg)
    resumed.load(tmp_path)
    assert resumed.epoch == 1 and resumed.opt.param_groups[0]["lr"] == first.opt.param_groups[0]["lr"]
    for _ in range(2):
        resumed.run_epoch(progress=False)

    a, b = _state(straight.model), _state(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [h["loss"] for h in straight.history] == [h["loss"] for h in resumed.history]


def test_online_teacher_replaces_the_target(base):
    class Constant(nn.Module):
        def forward(self, x):
            return torch.full((len(x), 10), 0.1)

    seen = []

    class Spy(SmallCNN):
        def forward(self, x):
            return super().forward(x)

    trainer = Trainer(Spy(1, 10, 4), FreshAugmented(base, "cropflip"), TrainConfig(epochs=1, batch_size=32, device="cpu"),
                      teacher=Constant())
    orig = trainer._loss
    trainer._loss = lambda logits, target: seen.append(target) or orig(logits, target)
    trainer.run_epoch(progress=False)
    assert seen and all(torch.allclose(t, torch.full_like(t, 0.1)) for t in seen)


def test_fresh_augmented_mixing_targets(base):
    ds = FreshAugmented(base, "mixing", seed=0)
    for i in range(10):
        _, target, label = ds[i]
        assert abs(float(target.sum()) - 1) < 1e-6 and target[label] > 0
    ds.set_epoch(0)
    a = ds[3][0]
    ds.set_epoch(1)
    assert not torch.equal(a, ds[3][0])


def test_config_validation():
    with pytest.raises(ConfigError, match="positive"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError):
        TrainConfig(num_workers=-1)


def test_predict_probs_of_an_ensemble_are_its_own_probabilities():
    """An ensemble already averages softmaxes: a second softmax would flatten it (and wreck NLL/ECE)."""
    ds = drkit.load_dataset("digits:test").subset(np.arange(40))
    torch.manual_seed(0)
    members = [SmallCNN(1, 10, width=4).eval() for _ in range(2)]
    ens = drkit.TeacherEnsemble(members)
    got = predict_probs(ens, ds)
    x = torch.stack([ds.image(i) for i in range(len(ds))]).float() / 255
    want = torch.stack([torch.softmax(m(x), -1) for m in members]).mean(0).double().detach().numpy()
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(predict_probs(members[0], ds), torch.softmax(members[0](x), -1).detach().numpy(),
                               atol=1e-6)

"""Randomized-smoothing CERTIFY: the Clopper–Pearson bound by hand and against scipy's exact
binomial interval, radii of models whose votes are known, abstention, certified accuracy by hand,
determinism and settings validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import binomtest, norm
from torch import nn

from drkit.errors import ConfigError
from drkit.evaluate.certify import (
    ABSTAIN,
    CertifyConfig,
    certified_accuracy,
    certify_dataset,
    certify_sample,
    clopper_pearson_lower,
)


class Constant(nn.Module):
    """Always predicts ``cls`` whatever the noise."""

    def __init__(self, cls: int, classes: int = 3) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.cls, self.classes = cls, classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(x), self.classes)
        out[:, self.cls] = 1.0
        return out + 0 * self.w


class SignOfNoise(nn.Module):
    """Class 0 or 1 by the sign of the input's mean: a fair coin under noise around 0."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.flatten(1).mean(1)
        return torch.stack([m, -m], 1) + 0 * self.w


def test_clopper_pearson_by_hand_and_against_scipy():
    # all n successes: Beta(n, 1) has CDF p^n, so the alpha quantile is alpha^(1/n)
    assert clopper_pearson_lower(10, 10, 0.001) == pytest.approx(0.001 ** 0.1, rel=1e-9)
    assert clopper_pearson_lower(0, 10, 0.001) == 0.0
    for k, n in ((3, 10), (57, 100), (990, 1000)):
        # one-sided alpha = lower end of the two-sided (1 - 2 alpha) exact interval
        ref = binomtest(k, n).proportion_ci(confidence_level=1 - 2 * 0.01, method="exact").low
        assert clopper_pearson_lower(k, n, 0.01) == pytest.approx(ref, rel=1e-9)
    with pytest.raises(ValueError, match="successes"):
        clopper_pearson_lower(11, 10, 0.01)


def test_constant_model_gets_the_largest_radius_n_allows():
    cfg = CertifyConfig(sigma=0.5, n0=10, n=200, alpha=0.001, batch_size=64)
    cls, radius = certify_sample(Constant(2), torch.zeros(1, 8, 8), cfg, num_classes=3)
    assert cls == 2
    assert radius == pytest.approx(0.5 * norm.ppf(0.001 ** (1 / 200)), rel=1e-9)


def test_a_coin_flip_abstains():
    cfg = CertifyConfig(sigma=1.0, n0=20, n=200, batch_size=50)
    assert certify_sample(SignOfNoise(), torch.zeros(1, 4, 4), cfg, num_classes=2) == (ABSTAIN, 0.0)


def test_certified_accuracy_by_hand():
    preds = np.array([0, 1, ABSTAIN, 2])
    radius = np.array([0.8, 0.3, 0.0, 0.1])
    labels = np.array([0, 1, 2, 0])
    # right with radius >= r: sample 0 (0.8), sample 1 (0.3); sample 2 abstains, sample 3 is wrong
    assert certified_accuracy(preds, radius, labels, (0.0, 0.25, 0.5, 1.0)) == [0.5, 0.5, 0.25, 0.0]


def test_certify_dataset_is_deterministic_and_reports(digits60):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    cfg = CertifyConfig(sigma=0.25, n0=8, n=40, num_samples=5, radii=(0.0, 0.1), batch_size=16)
    a = certify_dataset(model, digits60, cfg, progress=False)
    b = certify_dataset(model, digits60, cfg, progress=True)
    assert a == b
    assert a["indices"] == [0, 15, 30, 44, 59] and len(a["predictions"]) == 5
    assert set(a["certified_accuracy"]) == {"0", "0.1"}
    assert a["certified_accuracy"]["0"] >= a["certified_accuracy"]["0.1"]
    assert 0.0 <= a["abstain_rate"] <= 1.0 and a["n"] == 40


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"sigma": 0}, "must be positive"), ({"n": 0}, "must be positive"), ({"alpha": 0.7}, "alpha"),
     ({"radii": (-1.0,)}, "radii")],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        CertifyConfig(**kwargs)

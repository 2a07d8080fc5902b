"""Randomized-smoothing certified accuracy (Cohen, Rosenfeld & Kolter, ICML 2019).

The smoothed classifier ``g(x) = argmax_c P(f(x + ε) = c)``, ``ε ~ N(0, σ² I)``, is provably
constant within an L2 ball of radius ``σ Φ⁻¹(p_A)`` around ``x`` when the top class has
probability at least ``p_A``. CERTIFY estimates it by Monte Carlo:

1. draw ``n0`` noisy copies, take the most frequent class ``ĉ_A`` (selection);
2. draw ``n`` fresh copies, count ``n_A`` votes for ``ĉ_A`` (estimation);
3. ``p̲_A`` = one-sided ``(1 - α)`` Clopper–Pearson lower bound of ``n_A / n``;
4. if ``p̲_A < 1/2`` abstain, else return ``ĉ_A`` with radius ``σ Φ⁻¹(p̲_A)``.

With probability at least ``1 - α`` a returned radius is a true certificate. The certified
accuracy at radius ``r`` is the fraction of samples whose prediction is correct with radius
``≥ r`` (abstentions count as wrong). Noise is added to images in ``[0, 1]`` (the models normalize
internally), not clipped; it is drawn from one generator per sample, seeded by (seed, index).
Cohen et al. used n = 100,000; the CPU-friendly default here (1,000) caps the largest radius a
sample can get at ``σ Φ⁻¹(α^(1/n))`` ≈ 2.4σ.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.stats import beta, norm
from torch import nn

from .._progress import progress_bar
from ..data import ImageDataset
from ..errors import ConfigError

__all__ = ["CertifyConfig", "clopper_pearson_lower", "certify_sample", "certify_dataset"]

log = logging.getLogger(__name__)

ABSTAIN = -1


@dataclass
class CertifyConfig:
    """Settings of CERTIFY (defaults: Cohen et al.'s except ``n`` and the subset size)."""

    sigma: float = field(default=0.25, metadata={"help": "noise standard deviation, in [0, 1] pixel units"})
    n0: int = field(default=100, metadata={"help": "noisy samples to select the top class"})
    n: int = field(default=1000, metadata={"help": "noisy samples to estimate its probability (paper: 100000)"})
    alpha: float = field(default=0.001, metadata={"help": "failure probability of each certificate"})
    num_samples: int = field(default=100, metadata={"help": "evenly spaced test images to certify"})
    radii: tuple[float, ...] = field(default=(0.0, 0.25, 0.5, 0.75, 1.0),
                                     metadata={"help": "L2 radii to report certified accuracy at"})
    batch_size: int = field(default=500, metadata={"help": "noisy copies per forward pass"})
    seed: int = field(default=0, metadata={"help": "seed of the noise"})

    def __post_init__(self) -> None:
        if self.sigma <= 0 or self.n0 < 1 or self.n < 1 or self.num_samples < 1 or self.batch_size < 1:
            raise ConfigError("certify: sigma, n0, n, num_samples and batch_size must be positive, got "
                              f"{self.sigma}, {self.n0}, {self.n}, {self.num_samples}, {self.batch_size}")
        if not 0 < self.alpha < 0.5:
            raise ConfigError(f"certify: alpha must be in (0, 0.5), got {self.alpha}")
        self.radii = tuple(float(r) for r in self.radii)
        if any(r < 0 for r in self.radii):
            raise ConfigError(f"certify: radii must be >= 0, got {self.radii}")


def clopper_pearson_lower(successes: int, trials: int, alpha: float) -> float:
    """One-sided ``(1 - alpha)`` Clopper–Pearson lower confidence bound of a binomial proportion:
    the ``alpha`` quantile of ``Beta(k, n - k + 1)`` (0 when ``k = 0``). Equal to the lower end of
    statsmodels' ``proportion_confint(k, n, alpha=2 * alpha, method="beta")``, which Cohen et al. use."""
    if not 0 <= successes <= trials or trials < 1:
        raise ValueError(f"need 0 <= successes <= trials and trials >= 1, got {successes}, {trials}")
    if successes == 0:
        return 0.0

    return float(beta.ppf(alpha, successes, trials - successes + 1))


@torch.no_grad()
def _vote(model: nn.Module, x: torch.Tensor, num: int, cfg: CertifyConfig, gen: torch.Generator,
          num_classes: int) -> np.ndarray:
    """Class counts of ``model`` on ``num`` copies of ``x`` ``(C, H, W)`` plus Gaussian noise."""
    counts = np.zeros(num_classes, dtype=np.int64)
    device = next(model.parameters()).device
    left = num
    while left > 0:
        b = min(cfg.batch_size, left)
        noise = torch.randn((b, *x.shape), generator=gen) * cfg.sigma
        pred = model((x[None] + noise).to(device)).argmax(-1).cpu().numpy()
        counts += np.bincount(pred, minlength=num_classes)
        left -= b
    return counts


def certify_sample(model: nn.Module, x: torch.Tensor, cfg: CertifyConfig, *, num_classes: int,
                   index: int = 0) -> tuple[int, float]:
    """CERTIFY one float image ``x`` ``(C, H, W)`` in ``[0, 1]``: ``(class, radius)``, or
    ``(-1, 0.0)`` when it abstains. ``index`` keys the noise stream."""
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence([cfg.seed, index]).generate_state(1)[0]))
    c_hat = int(_vote(model, x, cfg.n0, cfg, gen, num_classes).argmax())
    n_a = int(_vote(model, x, cfg.n, cfg, gen, num_classes)[c_hat])
    p_lower = clopper_pearson_lower(n_a, cfg.n, cfg.alpha)
    if p_lower < 0.5:
        return ABSTAIN, 0.0

    return c_hat, float(cfg.sigma * norm.ppf(p_lower))


def certified_accuracy(predictions: np.ndarray, radii_found: np.ndarray, labels: np.ndarray,
                       radii: tuple[float, ...]) -> list[float]:
    """Fraction of samples predicted correctly with radius ``>= r``, for each ``r`` in ``radii``."""
    correct = np.asarray(predictions) == np.asarray(labels)
    return [float((correct & (np.asarray(radii_found) >= r)).mean()) for r in radii]


def certify_dataset(model: nn.Module, dataset: ImageDataset, config: CertifyConfig | None = None, *,
                    progress: bool = True) -> dict[str, Any]:
    """CERTIFY ``config.num_samples`` evenly spaced images of ``dataset``; returns the settings, the
    certified accuracy at each radius, the abstention rate and per-sample results."""
    cfg = config or CertifyConfig()
    n = len(dataset)
    idx = np.unique(np.linspace(0, n - 1, num=min(cfg.num_samples, n)).round().astype(np.int64))
    model.eval()
    preds, radius = [], []
    bar = progress_bar(len(idx), desc=f"certify σ={cfg.sigma:g}", unit="img", enabled=progress)
    for i in idx:
        x = dataset.image(int(i)).float() / 255.0
        c, r = certify_sample(model, x, cfg, num_classes=dataset.num_classes, index=int(i))
        preds.append(c)
        radius.append(r)
        bar.update(1)
    bar.close()
    preds_a, radius_a, labels = np.array(preds), np.array(radius), dataset.labels[idx]
    acc = certified_accuracy(preds_a, radius_a, labels, cfg.radii)
    return {
        **asdict(cfg), "radii": list(cfg.radii), "indices": idx.tolist(),
        "certified_accuracy": dict(zip([f"{r:g}" for r in cfg.radii], acc, strict=True)),
        "abstain_rate": float((preds_a == ABSTAIN).mean()),
        "mean_radius_correct": float(np.where(preds_a == labels, radius_a, 0.0).mean()),
        "predictions": preds_a.tolist(), "radius": radius_a.tolist(),
    }

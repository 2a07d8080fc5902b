"""OOD detection: AUROC by hand and against scikit-learn (ties included), entropy on OOD inputs,
and OOD data of another size and channel count adapted to the model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _eval_runs import make_run

from drkit.data import ArrayDataset
from drkit.evaluate.evaluation import evaluate_run
from drkit.evaluate.ood import _average_ranks, adapt_images, auroc, ood_metrics


def test_auroc_by_hand():
    # OOD scores 0.35 and 0.8 against in-dist 0.1 and 0.4: 0.35 beats 0.1 only, 0.8 beats both -> 3/4
    assert auroc([0.1, 0.4], [0.35, 0.8]) == 0.75
    assert auroc([1.0, 1.0], [1.0]) == 0.5  # ties count one half
    assert auroc([0, 1], [2, 3]) == 1.0 and auroc([2, 3], [0, 1]) == 0.0
    assert auroc([0.5, 0.2, 0.2], [0.2, 0.9]) == pytest.approx((1 + 3) / 6)  # 0.2 ties two (2 × 1/2), 0.9 beats 3
    with pytest.raises(ValueError, match="at least one"):
        auroc([], [1.0])
    with pytest.raises(ValueError, match="finite"):
        auroc([np.nan], [1.0])


def test_auroc_matches_sklearn_with_ties():
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=300).round(1), (rng.normal(size=200) + 0.7).round(1)
    ref = skm.roc_auc_score(np.r_[np.zeros(300), np.ones(200)], np.r_[a, b])
    assert auroc(a, b) == pytest.approx(ref, abs=1e-12)


def test_average_ranks_match_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    v = np.array([3.0, 1.0, 3.0, 2.0, 3.0, 1.0])
    assert np.array_equal(_average_ranks(v), scipy_stats.rankdata(v))


def test_ood_metrics_by_hand():
    confident = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.9, 0.1, 0.0]])
    uniform = np.full((3, 4), 0.25)
    m = ood_metrics(confident, uniform)
    assert m["auroc_max_prob"] == 1.0 and m["auroc_entropy"] == 1.0
    assert m["entropy_out"] == pytest.approx(math.log(4)) and m["max_entropy"] == pytest.approx(math.log(4))
    h2 = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    assert m["entropy_in"] == pytest.approx(h2 / 2)
    assert m["max_prob_in"] == pytest.approx(0.95) and m["max_prob_out"] == 0.25
    with pytest.raises(ValueError, match="same C"):
        ood_metrics(confident, uniform[:, :3])


def test_adapt_images_sizes_and_channels():
    gray8 = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8)
    assert adapt_images(gray8, (1, 8, 8)) is not None and torch.equal(adapt_images(gray8, (1, 8, 8)), gray8)
    up = adapt_images(gray8, (3, 28, 28))
    assert up.shape == (2, 3, 28, 28) and up.dtype == torch.uint8
    assert torch.equal(up[:, 0], up[:, 2])  # gray repeated
    rgb = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    assert adapt_images(rgb, (1, 8, 8)).shape == (2, 1, 8, 8)


def test_evaluate_run_with_ood_data_of_another_size(tmp_path, digits60):
    # a 3-class 16×16 "dataset" of bright squares vs dark background; digits (8×8) are OOD for it
    rng = np.random.default_rng(0)
    images = rng.integers(0, 40, size=(60, 1, 16, 16), dtype=np.uint8)
    labels = np.arange(60) % 3
    for i, c in enumerate(labels):
        images[i, 0, 4 * c:4 * c + 6, 4 * c:4 * c + 6] = 250
    squares = ArrayDataset(images, labels, name="squares")
    run = make_run(tmp_path / "squares", squares, steps=40, eval_data=None)
    r = evaluate_run(run, squares, corruptions=False, shifts=False, ood_data=digits60)
    o = r["ood"]
    assert o["data"] == "digits60" and o["adapted_from"] == [1, 8, 8] and o["num_samples"] == 60
    assert 0.0 <= o["auroc_max_prob"] <= 1.0 and 0.0 <= o["auroc_entropy"] <= 1.0
    assert 0.0 <= o["entropy_out"] <= math.log(3) + 1e-9

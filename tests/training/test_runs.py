"""drkit train runs: modes, resume after an interruption, transfer (--init), limited data, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _image_folders import mixed_size_folder

import drkit
from drkit.data import stratified_subset
from drkit.errors import ConfigError, StoreMismatchError
from drkit.training.loop import TrainConfig, Trainer
from drkit.training.runs import train_run


@pytest.fixture(scope="module")
def data():
    train = drkit.load_dataset("digits").subset(np.arange(96), name="digits96")
    test = drkit.load_dataset("digits:test").subset(np.arange(40), name="digits40")
    return train, test


@pytest.fixture(scope="module")
def teacher_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "teacher"
    train_run(data[0], out, arch="smallcnn-8", mode="erm", policy="cropflip", eval_data=data[1],
              config=TrainConfig(epochs=2, batch_size=32, device="cpu"), progress=False)
    return out


@pytest.fixture(scope="module")
def store(data, teacher_run, tmp_path_factory):
    return drkit.reinforce(data[0], [f"run:{teacher_run}"], tmp_path_factory.mktemp("s") / "s", num_augs=3,
                           topk=4, num_workers=0, progress=False)


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 2, "batch_size": 32, "device": "cpu", **kw})


@pytest.mark.parametrize("mode", ["erm", "dr", "kd"])
def test_modes_write_a_complete_run(mode, data, store, tmp_path):
    m = train_run(data[0], tmp_path / mode, arch="smallcnn-8", mode=mode, store=store.root, eval_data=data[1],
                  config=_cfg(), progress=False, trust_store_teachers=mode == "kd")
    assert m["complete"] and len(m["epochs"]) == 2 and 0 <= m["final"]["top1"] <= 1
    cfg = json.loads((tmp_path / mode / "config.json").read_text())
    assert cfg["policy"] == "randaugment"  # the store's policy, for all modes
    assert cfg["teachers"] == ([store.settings["teacher"]["members"][0]["spec"]] if mode == "kd" else [])
    # a finished run is a teacher
    model, _ = drkit.load_teacher(f"run:{tmp_path / mode}", num_classes=10, in_chans=1)
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_interrupted_run_resumes_to_the_same_weights(data, store, tmp_path, monkeypatch):
    kw = dict(arch="smallcnn-8", mode="dr", store=store.root, eval_data=data[1], config=_cfg(epochs=3), progress=False)
    train_run(data[0], tmp_path / "straight", **kw)

    real = Trainer.run_epoch
    calls = {"n": 0}

    def crash_on_second(self, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, **k)

    monkeypatch.setattr(Trainer, "run_epoch", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        train_run(data[0], tmp_path / "resumed", **kw)
    monkeypatch.setattr(Trainer, "run_epoch", real)
    assert not (tmp_path / "resumed" / "model.safetensors").exists()
    m = train_run(data[0], tmp_path / "resumed", **kw)
    assert len(m["epochs"]) == 3
    a = (tmp_path / "straight" / "model.safetensors").read_bytes()
    assert a == (tmp_path / "resumed" / "model.safetensors").read_bytes()


def test_other_settings_in_the_same_run_dir_are_refused(data, store, tmp_path):
    train_run(data[0], tmp_path / "r", arch="smallcnn-8", mode="erm", config=_cfg(epochs=1), progress=False)
    with pytest.raises(StoreMismatchError, match="arch"):
        train_run(data[0], tmp_path / "r", arch="smallcnn-4", mode="erm", config=_cfg(epochs=1), progress=False)


def test_init_transfers_weights_and_replaces_a_mismatched_head(data, teacher_run, tmp_path):
    five = drkit.data.ArrayDataset(data[0].images, data[0].labels % 5, name="digits-mod5")
    m = train_run(five, tmp_path / "ft", arch="smallcnn-8", mode="erm", init=teacher_run,
                  config=_cfg(epochs=1), progress=False)
    assert m["config"]["init"] == str(teacher_run)
    ft, _ = drkit.training.runs.load_run_model(tmp_path / "ft")
    src, _ = drkit.training.runs.load_run_model(teacher_run)
    assert ft.head.weight.shape == (5, 16) and src.head.weight.shape == (10, 16)
    with pytest.raises(ConfigError, match="no tensor fits"):
        train_run(data[0], tmp_path / "bad", arch="mlp-8", mode="erm", init=teacher_run, config=_cfg(epochs=1),
                  progress=False)


def test_train_fraction_is_stratified(data, store, tmp_path):
    idx = stratified_subset(data[0].labels, 0.25, seed=0)
    assert set(np.unique(data[0].labels[idx])) == set(np.unique(data[0].labels))
    m = train_run(data[0], tmp_path / "few", arch="smallcnn-8", mode="dr", store=store.root, train_fraction=0.25,
                  config=_cfg(epochs=1), progress=False)
    assert m["config"]["train_samples"] == len(idx) < 96


def test_reinforced_prob_mixes_in_originals_and_is_part_of_the_run(data, store, tmp_path):
    m = train_run(data[0], tmp_path / "p", arch="smallcnn-8", mode="dr", store=store.root, reinforced_prob=0.5,
                  config=_cfg(epochs=1), progress=False)
    assert m["config"]["reinforced_prob"] == 0.5
    full = train_run(data[0], tmp_path / "p1", arch="smallcnn-8", mode="dr", store=store.root, config=_cfg(epochs=1),
                     progress=False)
    assert "reinforced_prob" not in full["config"]  # runs made before the option read the same
    assert m["epochs"][0]["loss"] != full["epochs"][0]["loss"]  # other items were trained on
    with pytest.raises(StoreMismatchError, match="reinforced_prob"):  # resuming with another p is refused
        train_run(data[0], tmp_path / "p", arch="smallcnn-8", mode="dr", store=store.root, reinforced_prob=0.8,
                  config=_cfg(epochs=1), progress=False)
    with pytest.raises(ConfigError, match="reinforced_prob is for dr"):
        train_run(data[0], tmp_path / "e", mode="erm", reinforced_prob=0.5, config=_cfg(), progress=False)


def test_bad_runs_are_clear_errors(data, store, tmp_path):
    with pytest.raises(ConfigError, match="needs --store"):
        train_run(data[0], tmp_path / "a", mode="dr", config=_cfg(), progress=False)
    with pytest.raises(ConfigError, match="mode must be"):
        train_run(data[0], tmp_path / "b", mode="distill", config=_cfg(), progress=False)
    with pytest.raises(StoreMismatchError):
        train_run(drkit.load_dataset("digits:test"), tmp_path / "c", mode="dr", store=store.root, config=_cfg(),
                  progress=False)
    five = drkit.data.ArrayDataset(data[1].images, data[1].labels % 5, classes=[str(i) for i in range(5)])
    with pytest.raises(ConfigError, match="does not match"):
        train_run(data[0], tmp_path / "d", mode="erm", eval_data=five, config=_cfg(), progress=False)


def test_image_folder_of_mixed_sizes_trains_and_evaluates(tmp_path):
    """ERM at --image-size, a store at the same size, DR and KD students from it, and drkit eval on the
    folder: every image is cropped from its own extent in training and fitted for evaluation."""
    from drkit.evaluate.evaluation import evaluate_run

    folder = f"imagefolder:{mixed_size_folder(tmp_path / 'data')}"
    assert len({tuple(drkit.load_dataset(folder).image(i).shape) for i in range(12)}) > 1
    m = train_run(folder, tmp_path / "erm", arch="smallcnn-4", mode="erm", policy="cropflip", eval_data=folder,
                  image_size=16, config=_cfg(batch_size=5), progress=False)
    assert m["config"]["image_size"] == [16, 16] and 0 <= m["final"]["top1"] <= 1
    store = drkit.reinforce(folder, [f"run:{tmp_path / 'erm'}"], tmp_path / "store", policy="cropflip", num_augs=2,
                            topk=3, image_size=16, num_workers=0, progress=False)
    for mode in ("dr", "kd"):  # the store's view size is the run's input size
        m = train_run(folder, tmp_path / mode, arch="vit-mini-1", mode=mode, store=store.root, eval_data=folder,
                      config=_cfg(batch_size=5), progress=False,
                      trust_store_teachers=True)
        assert m["config"]["image_size"] == [16, 16]
        r = evaluate_run(tmp_path / mode, folder, corruptions=("contrast",), shifts=("rotation",), robustness_samples=4)
        assert r["num_samples"] == 12 and r["image_shape"] == [3, 16, 16]
    with pytest.raises(ConfigError, match="store's view size"):
        train_run(folder, tmp_path / "bad", mode="dr", store=store.root, image_size=20, config=_cfg(), progress=False)


def test_center_fit_keeps_aspect_and_centre():
    from drkit.data import center_fit

    image = torch.zeros(1, 20, 40, dtype=torch.uint8)
    image[:, :, 10:30] = 255  # the centre half is white
    out = center_fit(image, (10, 10))  # 20×40 -> 10×20 -> centre 10×10: white (squashing it would show black)
    assert out.shape == (1, 10, 10) and int(out[..., 1:-1].min()) == 255 and int(out.min()) > 200
    assert center_fit(image, (20, 40)) is image
    assert center_fit(image, (30, 30)).shape == (1, 30, 30)

import json

import numpy as np
import pytest
import torch
from _synth_fixtures import MeanGenerator, digits_split

import drkit
from drkit.data import ArrayDataset
from drkit.errors import DataError
from drkit.synth import Prompt, load_support_set, support_training_set, write_support_set
from drkit.synth.support import SupportSet, class_folder

NAMES = ["T-shirt/top", "Trouser", "Pullover"]


def _support(prompts, num_classes=3, shape=(1, 8, 8)) -> SupportSet:
    s = SupportSet(num_classes)
    for step, p in enumerate(prompts):
        images = torch.full((2, *shape), 40 * step, dtype=torch.uint8)
        s.add(images, p, np.repeat(np.eye(num_classes)[p.label][None], 2, 0), text=f"p{step}", seed=step, step=step)
        s.set_reward(step, 0.01 * step)
    return s


def test_class_folders_sort_as_class_ids():
    names = [class_folder(i, n) for i, n in enumerate(["b/x", "a", "?", *map(str, range(9))])]
    assert names[:3] == ["000_b_x", "001_a", "002_class"] and sorted(names) == names


def test_labels_align_with_real_class_ids(tmp_path):
    # class 0 never asked for and a name with a slash: the folder of class i is still the i-th
    support = _support([Prompt(0, (2, 0, 1)), Prompt(0, (1, 1, 1)), Prompt(0, (2, 2, 2))])
    out = write_support_set(tmp_path / "s", support, NAMES)
    folder = drkit.load_dataset(f"imagefolder:{out}")
    assert len(folder.classes) == 3 and sorted(folder.labels.tolist()) == [1, 1, 2, 2, 2, 2]
    for f, y in zip(folder.files, folder.labels, strict=True):
        item = next(i for i in json.loads((out / "manifest.json").read_text())["images"] if i["file"] in str(f))
        assert item["label"] == y == item["classes"][0]
    loaded = load_support_set(out, classes=NAMES)
    assert sorted(loaded.labels.tolist()) == [1, 1, 2, 2, 2, 2]
    first = loaded.manifest["images"][0]
    assert first["prompt"] == "p0" and first["seed"] == 0 and first["step"] == 0 and first["reward"] == 0.0
    np.testing.assert_allclose(loaded.prompt_targets[0], [0.2, 0.2, 0.6])


def test_wrong_classes_or_missing_files_raise(tmp_path):
    out = write_support_set(tmp_path / "s", _support([Prompt(0, (1, 1, 1))]), NAMES)
    with pytest.raises(DataError, match="classes"):
        load_support_set(out, classes=NAMES[::-1])
    next((out / class_folder(1, "Trouser")).iterdir()).unlink()
    with pytest.raises(DataError, match="missing"):
        load_support_set(out)
    with pytest.raises(DataError, match="class folders"):
        write_support_set(out, _support([Prompt(0, (1, 1, 1))]), NAMES)
    with pytest.raises(DataError, match="not a support set"):
        load_support_set(tmp_path)


def test_real_plus_synthetic_training_sets(tmp_path, digits_teacher, one_thread):
    train, _ = digits_split()
    gen = MeanGenerator(train)
    prompts = [Prompt(0, (3, 5, 8))] * 4 + [Prompt(1, (7, 7, 7))] * 4
    support = SupportSet(10)
    support.add(gen.generate(prompts, seed=0), prompts[0], np.zeros((8, 10)), text="x", seed=0, step=0)
    out = write_support_set(tmp_path / "s", support, train.classes)
    real = ArrayDataset(train.images, train.labels, classes=train.classes, name="digits200")

    hard = support_training_set(real, out, label="first")
    assert len(hard) == len(real) + 8
    x, target, label = hard[len(real)]
    assert x.dtype == torch.float32 and label == 3 and target.argmax() == 3 and target.max() == 1
    mixed = support_training_set(real, out, label="prompt")
    np.testing.assert_allclose(mixed[len(real)][1].numpy(), Prompt(0, (3, 5, 8)).mix(10), rtol=1e-6)

    # doubly reinforced: `drkit reinforce imagefolder:SUPPORT` + real and synthetic stores together
    store = drkit.reinforce(f"imagefolder:{out}", digits_teacher, tmp_path / "store", policy="cropflip", num_augs=2,
                            num_workers=0, progress=False)
    soft = support_training_set(real, out, label="teacher", store=store.root)
    soft.set_epoch(1)
    _, target, label = soft[len(real) + 2]
    assert label == 3 and target.shape == (10,) and float(target.sum()) == pytest.approx(1.0, abs=1e-3)
    assert float(target.max()) < 1.0  # a teacher's distribution, not a one-hot label
    history = drkit.train(drkit.create_model("smallcnn-4", num_classes=10, in_chans=1, image_size=(8, 8)), soft,
                          drkit.TrainConfig(epochs=1, batch_size=64, device="cpu"), progress=False)
    assert np.isfinite(history[0]["loss"])
    with pytest.raises(DataError, match="store"):
        support_training_set(real, out, label="teacher")

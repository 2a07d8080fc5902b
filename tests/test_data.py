"""Data sources: digits, Fashion-MNIST (offline files), image folders, .npz, any torch dataset;
and the fingerprint a store is checked against."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

import drkit
from drkit import DataError, dataset_fingerprint, load_dataset
from drkit.data import FASHION_MNIST_DIRS, ArrayDataset, ImageFolderDataset, TorchDatasetAdapter

# --------------------------------------------------------------------------- digits


def test_digits_splits():
    train, test = load_dataset("digits"), load_dataset("digits:test")
    assert len(train) == 1437 and len(test) == 360
    assert train.name == "digits" and test.name == "digits:test"
    assert train.num_classes == test.num_classes == 10
    img, label = train[0]
    assert img.dtype == torch.uint8 and img.shape == (1, 8, 8) and train.image_shape == (1, 8, 8)
    assert isinstance(label, int) and 0 <= label < 10
    assert int(train.images.max()) == 255 and int(train.images.min()) == 0  # 0..16 upscaled
    # stratified: every class in the test split, in proportion
    counts = np.bincount(test.labels, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38


def test_digits_splits_partition_the_source():
    from sklearn.datasets import load_digits

    d = load_digits()
    full = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)

    def keys(images, labels):
        return collections.Counter(im.tobytes() + bytes([int(lb)]) for im, lb in zip(images, labels, strict=True))

    train, test = load_dataset("digits"), load_dataset("digits:test")
    k_train, k_test = keys(train.images[:, 0], train.labels), keys(test.images[:, 0], test.labels)
    assert k_train + k_test == keys(full, d.target)  # disjoint, and together the whole source
    # loading is deterministic
    np.testing.assert_array_equal(load_dataset("digits").labels, train.labels)


def test_digits_bad_split():
    with pytest.raises(DataError, match="split must be 'train' or 'test'"):
        load_dataset("digits:val")


# --------------------------------------------------------------------------- Fashion-MNIST

_FMNIST = next((d for d in FASHION_MNIST_DIRS if Path(d, "train-images-idx3-ubyte.gz").exists()
                or Path(d, "train-images-idx3-ubyte").exists()), None)


@pytest.mark.skipif(_FMNIST is None, reason="dataset-fashion-mnist is not installed")
def test_fashion_mnist_offline(monkeypatch):
    monkeypatch.delenv("DRKIT_FASHION_MNIST", raising=False)
    train, test = load_dataset("fashion-mnist"), load_dataset("fashion-mnist:test")
    assert len(train) == 60000 and len(test) == 10000
    assert train.image_shape == (1, 28, 28) and train.image(0).dtype == torch.uint8
    assert train.num_classes == 10 and train.classes[0] == "T-shirt/top"
    assert np.bincount(test.labels).tolist() == [1000] * 10
    assert train.images.max() == 255


def test_fashion_mnist_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(drkit.data.builtin, "FASHION_MNIST_DIRS", ())
    monkeypatch.setenv("DRKIT_FASHION_MNIST", str(tmp_path))
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist")


def test_fashion_mnist_from_env_folder(tmp_path, monkeypatch):
    """IDX files (uncompressed) in $DRKIT_FASHION_MNIST."""
    images = np.arange(3 * 28 * 28, dtype=np.uint32).reshape(3, 28, 28).astype(np.uint8)
    labels = np.array([4, 0, 9], dtype=np.uint8)
    for prefix in ("train", "t10k"):
        (tmp_path / f"{prefix}-images-idx3-ubyte").write_bytes(
            bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (3, 28, 28)) + images.tobytes())
        (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(
            bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big") + labels.tobytes())
    monkeypatch.setenv("DRKIT_FASHION_MNIST", str(tmp_path))
    ds = load_dataset("fashion-mnist:test")
    assert len(ds) == 3 and ds.labels.tolist() == [4, 0, 9]
    assert ds.images.flags.writeable  # tensors over read-only memory warn and are unsafe to modify
    assert torch.equal(ds.image(1), torch.from_numpy(images[1])[None])


# --------------------------------------------------------------------------- image folder


def _write_folder(root: Path, mode: str, sizes: dict[str, int]) -> None:
    rng = np.random.default_rng(0)
    for cls, n in sizes.items():
        (root / cls).mkdir(parents=True)
        for i in range(n):
            shape = (10, 12) if mode == "L" else (10, 12, 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / cls / f"{i}.png")


@pytest.mark.parametrize(("mode", "channels"), [("L", 1), ("RGB", 3)])
def test_imagefolder(tmp_path, mode, channels):
    _write_folder(tmp_path, mode, {"zebra": 2, "ant": 3, "moth": 1})
    (tmp_path / "ant" / "notes.txt").write_text("not an image")
    ds = load_dataset(f"imagefolder:{tmp_path}")
    assert isinstance(ds, ImageFolderDataset)
    assert ds.classes == ["ant", "moth", "zebra"]  # sorted
    assert ds.labels.tolist() == [0, 0, 0, 1, 2, 2]
    img, label = ds[3]
    assert label == 1 and img.dtype == torch.uint8 and img.shape == (channels, 10, 12)
    want = np.asarray(Image.open(tmp_path / "moth" / "0.png"))
    want = want[None] if mode == "L" else want.transpose(2, 0, 1)
    np.testing.assert_array_equal(img.numpy(), want)
    assert ds.nbytes() == sum(p.stat().st_size for p in tmp_path.rglob("*.png"))


def test_imagefolder_composites_alpha_on_white(tmp_path):
    (tmp_path / "a").mkdir()
    rgba = np.random.default_rng(0).integers(0, 256, (6, 7, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a" / "x.png")
    img = load_dataset(f"imagefolder:{tmp_path}").image(0)
    assert img.shape == (3, 6, 7)
    rgb, alpha = rgba[..., :3].astype(np.int64), rgba[..., 3:].astype(np.int64)
    want = (rgb * alpha + 255 * (255 - alpha) + 127) // 255
    np.testing.assert_array_equal(img.numpy(), want.transpose(2, 0, 1))


def test_imagefolder_corrupt_image_names_the_file(tmp_path):
    _write_folder(tmp_path, "L", {"a": 2})
    bad = tmp_path / "a" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(DataError, match="broken.png"):  # found when the folder is opened
        load_dataset(f"imagefolder:{tmp_path}")
    ds = load_dataset(f"imagefolder:{tmp_path}?skip_bad_files=1")
    assert [f.name for f in ds.files] == ["0.png", "1.png"] and ds.skipped[0][0] == bad
    ds.image(0)  # the others still decode


def test_imagefolder_errors(tmp_path):
    with pytest.raises(DataError, match="is not a directory"):
        load_dataset(f"imagefolder:{tmp_path / 'missing'}")
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(DataError, match="no images"):
        load_dataset(f"imagefolder:{tmp_path}")


# --------------------------------------------------------------------------- npz


def test_npz_nhw(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (7, 9, 11), dtype=np.uint8)
    y = np.array([0, 1, 2, 1, 0, 2, 2])
    np.savez(tmp_path / "d.npz", x=x, y=y)
    ds = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert len(ds) == 7 and ds.image_shape == (1, 9, 11) and ds.num_classes == 3
    assert torch.equal(ds.image(4), torch.from_numpy(x[4])[None])
    assert ds.labels.tolist() == y.tolist()


def test_npz_nhwc_with_classes(tmp_path):
    x = np.random.default_rng(1).integers(0, 256, (5, 9, 11, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", images=x, labels=np.array([1, 0, 1, 1, 0]), classes=np.array(["cat", "dog"]))
    ds = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert ds.image_shape == (3, 9, 11) and ds.classes == ["cat", "dog"]
    assert torch.equal(ds.image(2), torch.from_numpy(x[2]).permute(2, 0, 1))
    assert ds[2][1] == 1


def test_npz_nchw(tmp_path):
    x = np.random.default_rng(2).integers(0, 256, (4, 3, 9, 11), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(4) % 2)
    ds = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert torch.equal(ds.image(3), torch.from_numpy(x[3]))


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "nokeys.npz", data=np.zeros((2, 4, 4), np.uint8), target=np.zeros(2))
    with pytest.raises(DataError, match=r"needs arrays 'x'.*it has \['data', 'target'\]"):
        load_dataset(f"npz:{tmp_path / 'nokeys.npz'}")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"npz:{tmp_path / 'absent.npz'}")
    np.savez(tmp_path / "float.npz", x=np.zeros((2, 4, 4), np.float32), y=np.zeros(2))
    with pytest.raises(DataError, match="must be uint8"):
        load_dataset(f"npz:{tmp_path / 'float.npz'}")
    np.savez(tmp_path / "count.npz", x=np.zeros((2, 4, 4), np.uint8), y=np.zeros(3))
    with pytest.raises(DataError, match="2 images but 3 labels"):
        load_dataset(f"npz:{tmp_path / 'count.npz'}")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(DataError, match="cannot read"):
        load_dataset(f"npz:{tmp_path / 'junk.npz'}")
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 4, 4), np.uint8), y=np.zeros(0))
    with pytest.raises(DataError, match="empty"):
        load_dataset(f"npz:{tmp_path / 'empty.npz'}")


def test_npz_refuses_pickled_arrays(tmp_path):
    np.savez(tmp_path / "obj.npz", x=np.zeros((2, 4, 4), np.uint8), y=np.array([0, {"a": 1}], dtype=object))
    with pytest.raises(DataError):
        load_dataset(f"npz:{tmp_path / 'obj.npz'}")


@pytest.mark.parametrize("name", ["cifar10", "imagefolder:", "npz:", "mnist:train", ""])
def test_unknown_name(name):
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset(name)


def test_not_a_dataset():
    with pytest.raises(DataError, match="expected a dataset name"):
        load_dataset(42)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- array dataset


def test_array_dataset_validation():
    with pytest.raises(DataError, match="non-negative"):
        ArrayDataset(np.zeros((2, 4, 4), np.uint8), np.array([0, -1]))
    with pytest.raises(DataError, match="class names"):
        ArrayDataset(np.zeros((2, 4, 4), np.uint8), np.array([0, 2]), classes=["a", "b"])
    with pytest.raises(DataError, match=r"images must be"):
        ArrayDataset(np.zeros((2, 4), np.uint8), np.array([0, 1]))


def test_array_dataset_subset(digits60):
    sub = digits60.subset([5, 1, 7])
    assert len(sub) == 3 and sub.classes == digits60.classes
    assert torch.equal(sub.image(0), digits60.image(5))
    assert sub.labels.tolist() == [digits60.labels[i] for i in (5, 1, 7)]
    assert load_dataset(sub) is sub  # an ImageDataset passes through


def test_empty_dataset_has_no_image_shape():
    ds = ArrayDataset(np.zeros((0, 1, 4, 4), np.uint8), np.zeros(0))
    assert len(ds) == 0
    with pytest.raises(DataError, match="empty"):
        ds.image_shape  # noqa: B018


# --------------------------------------------------------------------------- torch datasets


class _PilDataset(Dataset):
    def __init__(self, mode: str) -> None:
        rng = np.random.default_rng(3)
        shape = (6, 5) if mode == "L" else (6, 5, 3)
        self.arrays = [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(4)]
        self.mode = mode
        self.targets = [1, 0, 1, 2]

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, i):
        return Image.fromarray(self.arrays[i], self.mode), self.targets[i]


class _FloatTensorDataset(Dataset):
    """No ``.targets``: labels are read by iterating once."""

    def __init__(self) -> None:
        self.images = torch.rand(5, 3, 4, 6, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return 5

    def __getitem__(self, i):
        return self.images[i], torch.tensor(i % 2)


@pytest.mark.parametrize(("mode", "channels"), [("L", 1), ("RGB", 3)])
def test_torch_dataset_of_pil_images(mode, channels, monkeypatch):
    from_numpy = torch.from_numpy

    def writable_only(array: np.ndarray) -> torch.Tensor:
        # torch warns (once per process) on read-only arrays; writing to such a tensor is undefined
        assert array.flags.writeable, "a tensor over read-only memory"
        return from_numpy(array)

    monkeypatch.setattr(torch, "from_numpy", writable_only)
    src = _PilDataset(mode)
    ds = load_dataset(src)
    assert isinstance(ds, TorchDatasetAdapter)
    assert len(ds) == 4 and ds.num_classes == 3 and ds.labels.tolist() == [1, 0, 1, 2]
    img, label = ds[2]
    assert label == 1 and img.dtype == torch.uint8 and img.shape == (channels, 6, 5)
    want = src.arrays[2][None] if mode == "L" else src.arrays[2].transpose(2, 0, 1)
    np.testing.assert_array_equal(img.numpy(), want)


def test_torch_dataset_of_float_tensors():
    src = _FloatTensorDataset()
    ds = TorchDatasetAdapter(src, classes=["even", "odd"], name="floats")
    assert ds.labels.tolist() == [0, 1, 0, 1, 0] and ds.classes == ["even", "odd"] and ds.name == "floats"
    img = ds.image(3)
    assert img.dtype == torch.uint8 and img.shape == (3, 4, 6)
    assert torch.equal(img, (src.images[3] * 255).round().to(torch.uint8))


def test_torch_dataset_bad_images():
    class Normalized(_FloatTensorDataset):
        def __getitem__(self, i):
            return self.images[i] * 2 - 1, 0

    with pytest.raises(DataError, match=r"float images must be in \[0, 1\]"):
        load_dataset(Normalized()).image(0)

    class Strings(_FloatTensorDataset):
        def __getitem__(self, i):
            return "img.png", 0

    with pytest.raises(DataError, match="expected a PIL image, array or tensor"):
        load_dataset(Strings()).image(0)


# --------------------------------------------------------------------------- fingerprint


def test_fingerprint_is_stable_and_sensitive(digits60):
    fp = dataset_fingerprint(digits60)
    assert fp == dataset_fingerprint(digits60.subset(np.arange(60)))
    assert fp["length"] == 60 and fp["num_classes"] == 10 and fp["image_shape"] == [1, 8, 8]
    assert fp["content_items"] == 60

    labels = digits60.labels.copy()
    labels[17] = (labels[17] + 1) % 10
    relabelled = ArrayDataset(digits60.images, labels, classes=digits60.classes)
    fp2 = dataset_fingerprint(relabelled)
    assert fp2["labels_sha256"] != fp["labels_sha256"] and fp2["content_sha256"] == fp["content_sha256"]

    images = digits60.images.copy()
    images[33, 0, 4, 4] ^= 1
    repainted = ArrayDataset(images, digits60.labels, classes=digits60.classes)
    fp3 = dataset_fingerprint(repainted)
    assert fp3["content_sha256"] != fp["content_sha256"] and fp3["labels_sha256"] == fp["labels_sha256"]

    reordered = digits60.subset(np.r_[1, 0, 2:60])
    assert dataset_fingerprint(reordered)["content_sha256"] != fp["content_sha256"]
    assert dataset_fingerprint(digits60.subset(np.arange(59)))["length"] == 59


def test_fingerprint_of_large_dataset_samples_images():
    ds = ArrayDataset(np.zeros((5000, 1, 2, 2), np.uint8), np.zeros(5000))
    fp = dataset_fingerprint(ds)
    assert fp["length"] == 5000 and fp["content_items"] == drkit.data.FINGERPRINT_ITEMS

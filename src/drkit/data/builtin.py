"""The datasets drkit knows by name: scikit-learn's digits, Fashion-MNIST's IDX files, ``.npz`` arrays."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
from torchvision.datasets import FashionMNIST

from ..errors import DataError
from .base import ArrayDataset

__all__ = ["FASHION_MNIST_DIRS", "FASHION_MNIST_CLASSES", "load_digits", "load_fashion_mnist", "load_npz"]

FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


def load_digits(split: str) -> ArrayDataset:
    # scikit-learn takes 1-3 s to import and only this dataset needs it: imported on use
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)
    idx_train, idx_test = train_test_split(
        np.arange(len(d.target)), test_size=0.2, random_state=0, stratify=d.target
    )
    idx = np.sort(idx_train if split == "train" else idx_test)
    return ArrayDataset(images[idx], d.target[idx], classes=[str(i) for i in range(10)],
                        name="digits" if split == "train" else "digits:test")


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    # a bytearray, not bytes: the array must be writable (torch.from_numpy warns on read-only memory
    # and writing to a tensor over immutable bytes is undefined behaviour)
    return np.frombuffer(bytearray(data), dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_fashion_mnist(split: str, download: bool, root: str | None) -> ArrayDataset:
    prefix = "train" if split == "train" else "t10k"
    dirs = [root] if root else [os.environ.get("DRKIT_FASHION_MNIST", ""), *FASHION_MNIST_DIRS]
    for d in filter(None, dirs):
        for suffix in (".gz", ""):
            img, lab = Path(d) / f"{prefix}-images-idx3-ubyte{suffix}", Path(d) / f"{prefix}-labels-idx1-ubyte{suffix}"
            if img.exists() and lab.exists():
                return ArrayDataset(_read_idx(img), _read_idx(lab), classes=FASHION_MNIST_CLASSES,
                                    name="fashion-mnist" if split == "train" else "fashion-mnist:test")
    if not download:
        raise DataError(
            "Fashion-MNIST not found in " + ", ".join(filter(None, dirs)) + ". Install it offline with "
            "`apt-get install dataset-fashion-mnist`, set $DRKIT_FASHION_MNIST to a folder with the IDX "
            "files, or pass download=True (--download) to fetch it with torchvision."
        )

    target = Path(root or Path.home() / ".cache" / "drkit")
    ds = FashionMNIST(str(target), train=split == "train", download=True)
    return ArrayDataset(ds.data.numpy(), ds.targets.numpy(), classes=FASHION_MNIST_CLASSES,
                        name="fashion-mnist" if split == "train" else "fashion-mnist:test")


def load_npz(path: str) -> ArrayDataset:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"npz: file {p} does not exist")
    try:
        with np.load(p, allow_pickle=False) as z:
            keys = set(z.files)
            xk = next((k for k in ("x", "images", "x_train") if k in keys), None)
            yk = next((k for k in ("y", "labels", "y_train") if k in keys), None)
            if xk is None or yk is None:
                raise DataError(f"npz: {p} needs arrays 'x' (or 'images') and 'y' (or 'labels'); it has {sorted(keys)}")
            classes = [str(c) for c in z["classes"]] if "classes" in keys else None
            return ArrayDataset(z[xk], z[yk], classes=classes, name=f"npz:{p}")
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"npz: cannot read {p}: {e}") from e

"""``load_dataset``: a dataset by name (see :mod:`drkit.data`) or a wrapped dataset object."""

from __future__ import annotations

from torch.utils.data import Dataset

from ..errors import DataError
from .base import ImageDataset, TorchDatasetAdapter
from .builtin import load_digits, load_fashion_mnist, load_npz
from .folders import ImageFolderDataset, folder_options

__all__ = ["load_dataset"]


def load_dataset(source: str | Dataset, *, download: bool = False, root: str | None = None) -> ImageDataset:
    """Resolve a dataset name (see the module docstring) or wrap a dataset object."""
    if isinstance(source, ImageDataset):
        return source
    if isinstance(source, Dataset):
        return TorchDatasetAdapter(source)
    if not isinstance(source, str):
        raise DataError(f"expected a dataset name or a map-style dataset, got {type(source).__name__}")
    kind, _, arg = source.partition(":")
    if kind in ("digits", "fashion-mnist"):
        split = arg or "train"
        if split not in ("train", "test"):
            raise DataError(f"{kind}: split must be 'train' or 'test', got {split!r}")
        ds: ImageDataset = load_digits(split) if kind == "digits" else load_fashion_mnist(split, download, root)
    elif kind == "imagefolder" and arg:
        path, options = folder_options(arg)
        ds = ImageFolderDataset(path, **options)
    elif kind == "npz" and arg:
        ds = load_npz(arg)
    else:
        raise DataError(
            f"unknown dataset {source!r}: use digits[:test], fashion-mnist[:test], imagefolder:PATH or npz:PATH"
        )
    if len(ds) == 0:
        raise DataError(f"dataset {source!r} is empty")
    return ds

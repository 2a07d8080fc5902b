"""``load_dataset``: a dataset by name (see :mod:`drkit.data`) or a wrapped dataset object."""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset, IterableDataset

from ..errors import DataError
from .base import ImageDataset, TorchDatasetAdapter
from .builtin import load_digits, load_fashion_mnist, load_npz
from .folders import ImageFolderDataset, folder_options
from .hf_source import HuggingFaceDataset, load_hf
from .webdataset_source import WebDatasetSource, wds_options

__all__ = ["DATASET_KINDS", "load_dataset"]

#: every name ``load_dataset`` reads, as its error message lists them
DATASET_KINDS = ("digits[:test]", "fashion-mnist[:test]", "imagefolder:PATH[?channels=1|3&skip_bad_files=1]",
                 "npz:PATH", "wds:PATTERN[?image=EXT&label=EXT&channels=1|3]",
                 "hf:PATH_OR_NAME[:SPLIT][?image=COL&label=COL&channels=1|3&config=NAME]")


def _is_hf(obj: Any) -> bool:
    """A Hugging Face ``datasets`` object, recognised without importing ``datasets`` (seconds)."""
    return type(obj).__module__.split(".")[0] == "datasets"


def load_dataset(source: str | Dataset | Any, *, download: bool = False, root: str | None = None) -> ImageDataset:
    """Resolve a dataset name (see the module docstring of :mod:`drkit.data`) or wrap a dataset
    object: an :class:`ImageDataset` as is, a ``datasets.Dataset`` as a
    :class:`~drkit.data.hf_source.HuggingFaceDataset`, a map-style PyTorch dataset as a
    :class:`TorchDatasetAdapter`. Iterable datasets are refused with a :class:`DataError`: drkit
    reads samples by index (stream ``wds:`` shards for training with
    :class:`drkit.training.streamed.StreamedReinforcedDataset` instead)."""
    if isinstance(source, ImageDataset):
        return source
    if _is_hf(source):
        return HuggingFaceDataset(source)
    if isinstance(source, (Dataset, IterableDataset)):
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
    elif kind == "wds" and arg:
        pattern, options = wds_options(arg)
        ds = WebDatasetSource(pattern, **options)
    elif kind == "hf" and arg:
        ds = load_hf(arg)
    else:
        raise DataError(f"unknown dataset {source!r}: use {', '.join(DATASET_KINDS)}")
    if len(ds) == 0:
        raise DataError(f"dataset {source!r} is empty")
    return ds

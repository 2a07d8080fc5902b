"""Data sources: labelled image datasets as ``uint8`` ``(C, H, W)`` tensors, by name or object.

Names (``load_dataset``):

- ``digits`` / ``digits:test``: scikit-learn's bundled 8×8 digits (1,797 images), split 80/20
  with a fixed stratified split, upscaled from 0..16 to 0..255.
- ``fashion-mnist`` / ``fashion-mnist:test``: the IDX files of Debian's ``dataset-fashion-mnist``
  (``/usr/share/datasets/fashion-mnist``), ``$DRKIT_FASHION_MNIST``, or torchvision's download
  when ``download=True``.
- ``imagefolder:PATH``: ``PATH/<class_name>/*.png|jpg|jpeg|bmp|gif|webp``, classes sorted; options
  as a query, ``imagefolder:PATH?channels=3&skip_bad_files=1`` (see :class:`ImageFolderDataset`).
- ``npz:PATH``: a ``.npz`` with images (``x``/``images``: ``(N, H, W)``, ``(N, H, W, C)`` or
  ``(N, C, H, W)``, uint8) and labels (``y``/``labels``); optional ``classes``.
- ``wds:PATTERN``: webdataset tar shards, brace-expanded (``wds:/data/train-{000000..000009}.tar``),
  indexed once for random access (index cached); image member ``jpg``/``png``/``webp``/..., label
  member ``cls``/``label``/``class``; keys are the samples' ``__key__``; options
  ``?image=EXT&label=EXT&channels=1|3`` (see :class:`~drkit.data.webdataset_source.WebDatasetSource`).
- ``hf:PATH_OR_NAME[:split]``: a Hugging Face ``datasets`` dataset: a ``save_to_disk`` folder, a
  parquet file or folder, or a hub name (the cache only when ``HF_HUB_OFFLINE=1``); image and label
  columns detected (``Image``/``ClassLabel`` features, else ``image``/``img`` and ``label``/``labels``)
  or named, ``?image=COL&label=COL&channels=1|3&config=NAME`` (see
  :class:`~drkit.data.hf_source.HuggingFaceDataset`); keys are row indices.
- From the Python API: any map-style PyTorch dataset yielding ``(image, label)`` tuples or
  ``{"image": ..., "label": ...}`` mappings (PIL image, array or tensor), or a ``datasets.Dataset``.
  Iterable datasets are refused with a :class:`~drkit.errors.DataError` (drkit reads by index);
  for training that streams, see :mod:`drkit.training.streamed`.

Nothing here touches the network unless ``download=True`` or an ``hf:`` hub name is not cached.
"""

from __future__ import annotations

from .base import (
    ArrayDataset,
    FittedDataset,
    ImageDataset,
    TorchDatasetAdapter,
    center_fit,
    fit_images,
)
from .builtin import FASHION_MNIST_CLASSES, FASHION_MNIST_DIRS
from .decode import IMAGE_SUFFIXES, read_image, to_uint8_channels
from .fingerprint import FINGERPRINT_ITEMS, dataset_fingerprint
from .folders import ImageFolderDataset
from .hf_source import HuggingFaceDataset
from .loading import DATASET_KINDS, load_dataset
from .splits import stratified_subset
from .webdataset_source import WebDatasetSource

__all__ = [
    "ImageDataset",
    "ArrayDataset",
    "ImageFolderDataset",
    "WebDatasetSource",
    "HuggingFaceDataset",
    "DATASET_KINDS",
    "TorchDatasetAdapter",
    "read_image",
    "to_uint8_channels",
    "FittedDataset",
    "center_fit",
    "fit_images",
    "load_dataset",
    "dataset_fingerprint",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIRS",
    "FINGERPRINT_ITEMS",
    "IMAGE_SUFFIXES",
    "stratified_subset",
]

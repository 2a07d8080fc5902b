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
- Any map-style PyTorch dataset yielding ``(image, label)`` (PIL image, array or tensor) from
  the Python API.

Nothing here touches the network unless ``download=True``.
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
from .loading import load_dataset
from .splits import stratified_subset

__all__ = [
    "ImageDataset",
    "ArrayDataset",
    "ImageFolderDataset",
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

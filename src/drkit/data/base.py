"""The dataset contract every stage reads (:class:`ImageDataset`) and the in-memory kinds of it:
arrays, wrapped PyTorch datasets, and datasets fitted to a model's input size."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset
from torchvision.transforms.v2 import functional as F

from ..errors import DataError
from .decode import as_uint8_chw

__all__ = ["ImageDataset", "ArrayDataset", "TorchDatasetAdapter", "FittedDataset", "center_fit", "fit_images"]

log = logging.getLogger(__name__)


class ImageDataset(Dataset):
    """A labelled image dataset: ``ds[i] -> (uint8 tensor (C, H, W), int label)``.

    Subclasses set ``name``, ``classes`` (class names, index = label id) and ``labels`` (int64
    array of length ``len(ds)``) and implement ``__len__`` and ``image(i)``.
    """

    name: str
    classes: list[str]
    labels: np.ndarray
    #: True where images may differ in size (image folders, wrapped datasets): ``image_shape`` is then
    #: the first image's, and evaluation fits each image to the model's input (:func:`fit_images`).
    variable_size: bool = False

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, index: int) -> torch.Tensor:
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.image(index), int(self.labels[index])

    def key(self, index: int) -> str:
        """A stable name of sample ``index`` that survives reordering of the source: what a store
        records per sample and matches another copy of the dataset by. Default: the row index as
        text (arrays, wrapped datasets); image folders give the file's path relative to the root."""
        return str(index)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Shape of the first image; all images of a dataset must share it."""
        if len(self) == 0:
            raise DataError(f"dataset {self.name!r} is empty: nothing to reinforce or train on")
        return tuple(self.image(0).shape)  # type: ignore[return-value]

    def nbytes(self) -> int:
        """Size of the source as stored (files on disk, or raw uint8 pixels)."""
        c, h, w = self.image_shape
        return len(self) * c * h * w

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, n={len(self)}, classes={self.num_classes})"


class ArrayDataset(ImageDataset):
    """Images held in one ``uint8`` array ``(N, C, H, W)``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, classes: Sequence[str] | None = None,
                 name: str = "array") -> None:
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[:, None]
        elif images.ndim == 4 and images.shape[-1] in (1, 3, 4) and images.shape[1] not in (1, 3, 4):
            images = images.transpose(0, 3, 1, 2)  # NHWC -> NCHW
        if images.ndim != 4:
            raise DataError(f"{name}: images must be (N, H, W), (N, H, W, C) or (N, C, H, W), got {images.shape}")
        if images.dtype != np.uint8:
            raise DataError(f"{name}: images must be uint8 (0..255), got {images.dtype}; convert them first")
        labels = np.asarray(labels).astype(np.int64).reshape(-1)
        if len(labels) != len(images):
            raise DataError(f"{name}: {len(images)} images but {len(labels)} labels")
        if len(labels) and labels.min() < 0:
            raise DataError(f"{name}: labels must be non-negative class ids")
        n_classes = int(labels.max()) + 1 if len(labels) else 0
        self.images = np.ascontiguousarray(images)
        self.labels = labels
        self.classes = list(classes) if classes is not None else [str(i) for i in range(n_classes)]
        if n_classes > len(self.classes):
            raise DataError(f"{name}: label {n_classes - 1} but only {len(self.classes)} class names")
        self.name = name

    def image(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.images[index])

    def nbytes(self) -> int:
        return int(self.images.nbytes)

    def subset(self, indices: Sequence[int] | np.ndarray, name: str | None = None) -> ArrayDataset:
        idx = np.asarray(indices)
        return ArrayDataset(self.images[idx], self.labels[idx], classes=self.classes,
                            name=name or f"{self.name}[{len(idx)}]")



class TorchDatasetAdapter(ImageDataset):
    """Wraps any map-style dataset whose items are ``(image, label, ...)`` tuples or mappings
    (``{"image": ..., "label": ...}``, the form Hugging Face-style datasets yield: the image under
    ``image``/``img``/``pixel_values``, the label under ``label``/``labels``/``target``; name other
    keys with ``image_key``/``label_key``). Labels come from ``.targets`` when present, else from one
    pass over the items. Its images (PIL, array or tensor) may differ in size.

    An ``IterableDataset`` (no ``len``, no random access) is refused with a :class:`DataError`:
    reinforcement indexes samples (the store's fingerprint, mixing partners). Write it to
    webdataset shards (``wds:PATTERN``) or a Hugging Face dataset (``hf:PATH``) instead.
    """

    variable_size = True
    IMAGE_KEYS = ("image", "img", "pixel_values")
    LABEL_KEYS = ("label", "labels", "target")

    def __init__(self, dataset: Dataset, *, classes: Sequence[str] | None = None, name: str | None = None,
                 image_key: str | None = None, label_key: str | None = None) -> None:
        self.name = name or type(dataset).__name__
        if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__len__"):
            raise DataError(
                f"{self.name} is an iterable dataset (no len, no random access); drkit reads samples by index. "
                "Write it to webdataset shards (wds:PATTERN) or a Hugging Face dataset (hf:PATH), or wrap it "
                "in a map-style Dataset"
            )
        self.dataset = dataset
        n = len(dataset)  # type: ignore[arg-type]
        first = dataset[0] if n else (None, 0)
        if isinstance(first, Mapping):
            self._image_at: Any = self._key(first, image_key, self.IMAGE_KEYS, "image")
            self._label_at: Any = self._key(first, label_key, self.LABEL_KEYS, "label")
        elif isinstance(first, (tuple, list)) and len(first) >= 2:
            self._image_at, self._label_at = 0, 1
        else:
            raise DataError(f"{self.name}: items must be (image, label) pairs or mappings with an image and a "
                            f"label, got {type(first).__name__}")
        targets = getattr(dataset, "targets", None)
        if targets is None:
            targets = [self._label(dataset[i][self._label_at], i) for i in range(n)]
        self.labels = np.asarray(targets, dtype=np.int64).reshape(-1)
        if len(self.labels) != n:
            raise DataError(f"{self.name}: {n} items but {len(self.labels)} targets")
        classes = classes or getattr(dataset, "classes", None)
        k = int(self.labels.max()) + 1 if len(self.labels) else 0
        self.classes = list(classes) if classes else [str(i) for i in range(k)]

    def _key(self, item: Mapping[str, Any], wanted: str | None, names: Sequence[str], what: str) -> str:
        if wanted is not None and wanted in item:
            return wanted
        found = next((k for k in names if k in item), None) if wanted is None else None
        if found is None:
            raise DataError(f"{self.name}: its items are mappings with keys {sorted(map(str, item))} and no "
                            f"{what} ({wanted or '/'.join(names)}); pass {what}_key= to name it")
        return found

    def _label(self, value: Any, index: int) -> int:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise DataError(f"{self.name}[{index}]: the label must be a class id (an integer), got "
                            f"{type(value).__name__}") from None

    def image(self, index: int) -> torch.Tensor:
        return as_uint8_chw(self.dataset[index][self._image_at], f"{self.name}[{index}]")


def center_fit(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``image`` (C, H, W) resized (bilinear, antialiased) until it covers ``size`` with its aspect
    ratio kept, then centre-cropped to ``size``: the usual evaluation transform. Unchanged when
    it already has that size."""

    h, w = (int(v) for v in image.shape[-2:])
    th, tw = size
    if (h, w) == (th, tw):
        return image
    scale = max(th / h, tw / w)
    rh, rw = max(th, round(h * scale)), max(tw, round(w * scale))
    image = F.resize(image, [rh, rw], interpolation=F.InterpolationMode.BILINEAR, antialias=True)
    return F.center_crop(image, [th, tw])


class FittedDataset(ImageDataset):
    """``dataset`` with every image fitted to ``size`` by :func:`center_fit`: equal-size batches
    from a folder of images of many sizes, at a model's input size."""

    def __init__(self, dataset: ImageDataset, size: tuple[int, int]) -> None:
        self.dataset, self.size = dataset, (int(size[0]), int(size[1]))
        self.labels, self.classes, self.name = dataset.labels, dataset.classes, dataset.name

    def image(self, index: int) -> torch.Tensor:
        return center_fit(self.dataset.image(index), self.size)

    def key(self, index: int) -> str:
        return self.dataset.key(index)

    def nbytes(self) -> int:
        return self.dataset.nbytes()


def fit_images(dataset: ImageDataset, size: tuple[int, int]) -> ImageDataset:
    """``dataset`` as a model of input ``size`` sees it at evaluation: a variable-size dataset's
    images fitted by :func:`center_fit` (logged when its first image differs); any other as is."""
    if not dataset.variable_size:
        return dataset
    first = tuple(dataset.image_shape[1:])
    if first != tuple(size):
        log.info("%s: images fitted to %d×%d (resize, centre crop), the first one from %d×%d",
                 dataset.name, size[0], size[1], *first)
    return FittedDataset(dataset, size)

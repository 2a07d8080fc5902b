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

import gzip
import hashlib
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets import FashionMNIST
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms.v2 import functional as F

from .errors import ConfigError, DataError

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
]

log = logging.getLogger(__name__)

FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
BACKGROUND = 255  # transparent pixels are composited onto white
FINGERPRINT_ITEMS = 4096  # images hashed (evenly spaced) for a dataset's content checksum


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


def to_uint8_channels(image: torch.Tensor, channels: int | None = None) -> torch.Tensor:
    """A decoded ``(C, H, W)`` image (C: 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA; uint8 or uint16) as
    uint8 with ``channels`` channels (1 or 3; None: 1 for gray sources, 3 for colour ones).

    The one set of rules every drkit reader applies: 16-bit values are scaled to 8 bit
    (``round(v * 255 / 65535)``), alpha is composited onto a white background (:data:`BACKGROUND`),
    RGB becomes gray by ITU-R 601-2 luma (as PIL's ``convert("L")``), gray becomes RGB by repetition.
    """
    if image.ndim != 3 or not 1 <= image.shape[0] <= 4:
        raise DataError(f"expected a (C, H, W) image with 1 to 4 channels, got shape {tuple(image.shape)}")
    x = image.to(torch.int32)
    if image.dtype == torch.uint16 or image.dtype == torch.int32:  # 16-bit PNG (int32: PIL's "I" mode)
        if int(x.min()) < 0 or int(x.max()) > 65535:
            raise DataError(f"image values {int(x.min())}..{int(x.max())} are not 16-bit; convert the image to 8 bit")
        x = (x * 255 + 32767) // 65535
    elif image.dtype != torch.uint8:
        raise DataError(f"unsupported image dtype {image.dtype}; use 8- or 16-bit images")
    if x.shape[0] in (2, 4):  # composite the colour onto the background by its alpha
        color, alpha = x[:-1], x[-1:]
        x = (color * alpha + BACKGROUND * (255 - alpha) + 127) // 255
    if channels is not None and channels not in (1, 3):
        raise DataError(f"channels must be 1 (gray) or 3 (RGB), got {channels}")
    if channels == 1 and x.shape[0] == 3:
        x = (x[0] * 19595 + x[1] * 38470 + x[2] * 7471 + 0x8000) >> 16
        x = x[None]
    elif channels == 3 and x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return x.to(torch.uint8).contiguous()


def _pil_to_tensor(image: Any) -> torch.Tensor:
    """A PIL image as its raw ``(C, H, W)`` tensor: gray/RGB with their alpha, 16-bit kept."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        array = np.array(image, dtype=np.uint16)
    elif mode == "I":
        array = np.array(image, dtype=np.int32)
    else:
        plain = {"1": "L", "L": "L", "LA": "LA", "La": "LA", "RGB": "RGB", "RGBA": "RGBA", "RGBa": "RGBA",
                 "PA": "RGBA", "P": "RGBA" if "transparency" in image.info else "RGB"}
        mode = plain.get(mode, "RGB")  # CMYK, YCbCr, LAB, HSV, F: as RGB
        if mode != image.mode:
            image = image.convert(mode)
        array = np.array(image)  # a writable copy: np.asarray of a PIL image is read-only
    t = torch.from_numpy(np.ascontiguousarray(array))
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1)


def _decode(path: Path) -> torch.Tensor:
    """The raw decoded image (torchvision's decoders; PIL for what they do not read, e.g. BMP)."""

    try:
        img = decode_image(read_file(str(path)), mode=ImageReadMode.UNCHANGED)
    except Exception:  # torchvision raises RuntimeError with little context; PIL says more, reads more

        with Image.open(path) as im:
            im.load()
            img = _pil_to_tensor(im)
    return img[0] if img.ndim == 4 else img  # an animated GIF: its first frame


def _reason(path: Path, error: BaseException) -> str:
    if path.stat().st_size == 0:
        return "empty file (0 bytes)"
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


def read_image(path: str | os.PathLike[str], channels: int | None = None) -> torch.Tensor:
    """The one way drkit reads an image file: decoded, then :func:`to_uint8_channels` (uint8
    ``(channels, H, W)``; 16-bit scaled, alpha composited onto white, gray <-> RGB). Every command
    (``reinforce``, ``train``, ``eval``) reads image folders through it.

    Raises :class:`DataError` naming the file when it cannot be decoded.
    """
    path = Path(path)
    try:
        img = _decode(path)
    except Exception as e:
        raise DataError(f"cannot decode image {path}: {_reason(path, e)}. Remove or replace the file.") from None
    try:
        return to_uint8_channels(img, channels)
    except DataError as e:
        raise DataError(f"{path}: {e}") from None


def _to_uint8_chw(image: Any, where: str) -> torch.Tensor:
    """PIL image, array or tensor -> uint8 (C, H, W) tensor (PIL images by the rules of :func:`read_image`)."""
    if hasattr(image, "convert") and hasattr(image, "mode"):  # PIL
        try:
            return to_uint8_channels(_pil_to_tensor(image))
        except DataError as e:
            raise DataError(f"{where}: {e}") from None
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image))
        if image.ndim == 3 and image.shape[-1] in (1, 3) and image.shape[0] not in (1, 3):
            image = image.permute(2, 0, 1)
    if not isinstance(image, torch.Tensor):
        raise DataError(f"{where}: expected a PIL image, array or tensor, got {type(image).__name__}")
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3:
        raise DataError(f"{where}: expected an image (C, H, W) or (H, W), got shape {tuple(image.shape)}")
    if image.dtype.is_floating_point:
        if image.min() < 0 or image.max() > 1:
            raise DataError(f"{where}: float images must be in [0, 1] (un-normalized); got "
                            f"[{float(image.min()):.3g}, {float(image.max()):.3g}]")
        image = (image * 255).round().to(torch.uint8)
    elif image.dtype != torch.uint8:
        raise DataError(f"{where}: unsupported image dtype {image.dtype}; use uint8 or float in [0, 1]")
    return image.contiguous()


def _scan(path: Path) -> tuple[int, str | None]:
    """(1 for a gray source, 3 for a colour one, or 0; why it cannot be read, or None)."""
    try:
        img = _decode(path)
        if img.ndim != 3 or not 1 <= img.shape[0] <= 4:
            return 0, f"decodes to shape {tuple(img.shape)}, not an image"
        return (1 if img.shape[0] <= 2 else 3), None
    except Exception as e:
        return 0, _reason(path, e)


class ImageFolderDataset(ImageDataset):
    """``root/<class_name>/<image>``; images are decoded on access and may differ in size.

    The folder is scanned once when opened (every file decoded), so that every unreadable file is
    named in one :class:`DataError` — or, with ``skip_bad_files=True``, left out and listed in a
    warning and in :attr:`skipped`. Every image is read by :func:`read_image` as ``channels``
    channels: 1 (gray) or 3 (RGB); by default the majority of the files' own (RGB on a tie), the
    others converted (gray <-> RGB; alpha composited onto white; 16-bit scaled to 8 bit).

    Args:
        root: the folder, one sub-folder per class.
        channels: 1 or 3; None: by majority.
        skip_bad_files: leave unreadable files out (logged) instead of failing.
    """

    variable_size = True

    def __init__(self, root: str | os.PathLike[str], *, channels: int | None = None,
                 skip_bad_files: bool = False) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"imagefolder: {self.root} is not a directory")
        if channels not in (None, 1, 3):
            raise DataError(f"imagefolder: channels must be 1 (gray) or 3 (RGB), got {channels}")
        self.classes = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        files, labels = [], []
        for label, name in enumerate(self.classes):
            for f in sorted((self.root / name).iterdir()):
                if f.suffix.lower() in IMAGE_SUFFIXES:
                    files.append(f)
                    labels.append(label)
        if not files:
            raise DataError(f"imagefolder: no images ({', '.join(IMAGE_SUFFIXES)}) under {self.root}/<class>/")

        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            scanned = list(pool.map(_scan, files))
        self.skipped: list[tuple[Path, str]] = [(f, why) for f, (_, why) in zip(files, scanned, strict=True) if why]
        if self.skipped:
            listing = "\n".join(f"  {f}: {why}" for f, why in self.skipped[:50])
            more = f"\n  ... and {len(self.skipped) - 50} more" if len(self.skipped) > 50 else ""
            if not skip_bad_files:
                raise DataError(
                    f"imagefolder: {len(self.skipped)} of {len(files)} files under {self.root} cannot be read:\n"
                    f"{listing}{more}\nRemove or replace them, or leave them out with skip_bad_files "
                    f"(imagefolder:{self.root}?skip_bad_files=1)"
                )
            log.warning("imagefolder %s: %d unreadable files left out:\n%s%s", self.root, len(self.skipped),
                        listing, more)
        keep = [k for k, (_, why) in enumerate(scanned) if why is None]
        if not keep:
            raise DataError(f"imagefolder: none of the {len(files)} files under {self.root} can be read")
        gray = sum(scanned[k][0] == 1 for k in keep)
        self.channels = channels or (1 if gray > len(keep) - gray else 3)
        if channels is None and 0 < gray < len(keep):
            log.warning("imagefolder %s: %d gray and %d colour images; all read as %s (pass channels= to choose)",
                        self.root, gray, len(keep) - gray, "gray" if self.channels == 1 else "RGB")
        self.files = [files[k] for k in keep]
        self.labels = np.asarray([labels[k] for k in keep], dtype=np.int64)
        self.name = f"imagefolder:{self.root}"

    def image(self, index: int) -> torch.Tensor:
        return read_image(self.files[index], self.channels)

    def nbytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)


class TorchDatasetAdapter(ImageDataset):
    """Wraps any map-style dataset yielding ``(image, label)``; reads labels from ``.targets``
    when present (else by iterating once). Its images may differ in size."""

    variable_size = True

    def __init__(self, dataset: Dataset, *, classes: Sequence[str] | None = None, name: str | None = None) -> None:
        self.dataset = dataset
        targets = getattr(dataset, "targets", None)
        if targets is None:
            targets = [int(dataset[i][1]) for i in range(len(dataset))]  # type: ignore[arg-type]
        self.labels = np.asarray(targets, dtype=np.int64).reshape(-1)
        classes = classes or getattr(dataset, "classes", None)
        n = int(self.labels.max()) + 1 if len(self.labels) else 0
        self.classes = list(classes) if classes else [str(i) for i in range(n)]
        self.name = name or type(dataset).__name__

    def image(self, index: int) -> torch.Tensor:
        return _to_uint8_chw(self.dataset[index][0], f"{self.name}[{index}]")


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


def _load_digits(split: str) -> ArrayDataset:
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


def _load_fashion_mnist(split: str, download: bool, root: str | None) -> ArrayDataset:
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


def _load_npz(path: str) -> ArrayDataset:
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


def _folder_options(arg: str) -> tuple[str, dict[str, Any]]:
    """``PATH?channels=3&skip_bad_files=1`` -> (PATH, options); a ``?`` not followed by options is
    part of the path."""
    path, sep, query = arg.rpartition("?")
    items = [q.partition("=") for q in query.split("&")] if sep else []
    if not items or not all(eq for _, eq, _ in items):
        return arg, {}
    options: dict[str, Any] = {}
    for key, _, value in items:
        if key == "channels" and value in ("1", "3"):
            options["channels"] = int(value)
        elif key == "skip_bad_files" and value.lower() in ("1", "0", "true", "false", "yes", "no"):
            options["skip_bad_files"] = value.lower() in ("1", "true", "yes")
        else:
            raise DataError(f"imagefolder: unknown option {key}={value!r}; use channels=1|3 and skip_bad_files=0|1")
    return path, options


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
        ds: ImageDataset = _load_digits(split) if kind == "digits" else _load_fashion_mnist(split, download, root)
    elif kind == "imagefolder" and arg:
        path, options = _folder_options(arg)
        ds = ImageFolderDataset(path, **options)
    elif kind == "npz" and arg:
        ds = _load_npz(arg)
    else:
        raise DataError(
            f"unknown dataset {source!r}: use digits[:test], fashion-mnist[:test], imagefolder:PATH or npz:PATH"
        )
    if len(ds) == 0:
        raise DataError(f"dataset {source!r} is empty")
    return ds


def dataset_fingerprint(dataset: ImageDataset) -> dict[str, Any]:
    """Length, class count, label checksum and a content checksum over up to
    ``FINGERPRINT_ITEMS`` evenly spaced images: what a store is checked against."""
    n = len(dataset)
    labels = np.ascontiguousarray(np.asarray(dataset.labels, dtype="<i8"))
    idx = np.unique(np.linspace(0, n - 1, num=min(n, FINGERPRINT_ITEMS)).round().astype(np.int64)) if n else []
    h = hashlib.sha256()
    for i in idx:
        img = dataset.image(int(i))
        h.update(np.asarray(img.shape, dtype="<i8").tobytes())
        h.update(img.contiguous().numpy().tobytes())
    return {
        "length": n,
        "num_classes": dataset.num_classes,
        "image_shape": list(dataset.image_shape) if n else [],
        "labels_sha256": hashlib.sha256(labels.tobytes()).hexdigest(),
        "content_sha256": h.hexdigest(),
        "content_items": len(idx),
    }


def stratified_subset(labels: np.ndarray, fraction: float, *, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``fraction`` of each class (at least one per class), chosen by ``seed``."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"train fraction must be in (0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        picked.append(rng.choice(idx, size=max(1, int(round(fraction * len(idx)))), replace=False))
    return np.sort(np.concatenate(picked))

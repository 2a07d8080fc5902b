"""``hf:PATH_OR_NAME[:split]``: a Hugging Face ``datasets.Dataset`` as an :class:`ImageDataset`.

Where the data comes from, in this order:

1. a folder written by ``save_to_disk`` (``datasets.load_from_disk``; a ``DatasetDict``'s split by
   ``:split``, default ``train``, or its only split);
2. a ``.parquet`` file, or a folder of them (``load_dataset("parquet", ...)``; a folder's splits
   from its file names, ``train-*.parquet``, ``test-*.parquet``, as the hub lays them out);
3. otherwise a name on the hub (``datasets.load_dataset(NAME, split=...)``): from the local cache
   when ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` is set (set it before the process starts:
   ``datasets`` reads it when first imported), else downloaded — the one case where a drkit
   command touches the network, because the user named a hub dataset.

Columns: the image is the first column of ``datasets.Image`` type, else one named ``image``/``img``
(encoded bytes, or an ``(H, W[, C])`` array); the label the first ``ClassLabel`` column, else one
named ``label``/``labels`` (integers, or strings: classes then sorted). Name them with options, as
for image folders: ``hf:PATH:train?image=col&label=col&channels=3`` (``config=NAME`` picks a hub
dataset's configuration). Class names come from the ``ClassLabel``; a sample's key is its row
index as text. Encoded images are decoded by drkit's own rules (:func:`~drkit.data.decode.decode_bytes`),
not by ``datasets``' PIL decoding, so the same file gives the same tensor in a folder, a tar shard
and a parquet file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .base import ImageDataset
from .decode import as_uint8_chw, decode_bytes, to_uint8_channels
from .options import parse_channels, split_options

__all__ = ["HuggingFaceDataset", "hf_options", "load_hf", "IMAGE_COLUMNS", "LABEL_COLUMNS"]

log = logging.getLogger(__name__)

IMAGE_COLUMNS = ("image", "img")
LABEL_COLUMNS = ("label", "labels")
_OPTIONS = {"image": "COLUMN", "label": "COLUMN", "channels": "1|3", "config": "NAME (a hub configuration)"}
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def hf_options(arg: str) -> tuple[str, str | None, dict[str, str]]:
    """``PATH_OR_NAME[:split][?options]`` -> (path or name, split or None, raw options). A path
    that exists is taken whole (it may hold ``:``); else the first ``:`` starts the split (which
    may hold ``:`` itself, as a slice ``train[:100]``)."""
    target, options = split_options("hf", arg, _OPTIONS)
    if Path(target).exists():
        return target, None, options
    name, sep, split = target.partition(":")
    if not name:
        raise DataError("hf: give a path or a hub name, e.g. hf:/data/cifar10-saved:train or hf:uoft-cs/cifar10:test")
    return name, (split or None) if sep else None, options


def _offline() -> bool:
    return any(os.environ.get(v, "").upper() in ("1", "ON", "YES", "TRUE") for v in _OFFLINE_VARS)


def _choose_split(splits: Any, split: str | None, where: str) -> Any:
    names = list(splits)
    if split is None:
        if "train" in names or len(names) != 1:
            split = "train"
        else:
            split = names[0]
    if split not in names:
        raise DataError(f"hf: {where} has no split {split!r}; its splits are {', '.join(names)} (hf:{where}:SPLIT)")
    return splits[split]


def _load_local(path: Path, split: str | None) -> Any:
    import datasets

    if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
        try:
            ds = datasets.load_from_disk(str(path))
        except Exception as e:  # datasets raises FileNotFoundError/ValueError/ArrowInvalid for broken folders
            raise DataError(f"hf: cannot load the saved dataset {path}: {e}") from None
        if isinstance(ds, datasets.DatasetDict):
            return _choose_split(ds, split, str(path))
        if split not in (None, "train"):
            raise DataError(f"hf: {path} holds one split (a Dataset, not a DatasetDict); drop :{split}")
        return ds
    files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
    if not files or any(f.suffix != ".parquet" for f in files):
        raise DataError(f"hf: {path} is neither a save_to_disk folder (dataset_dict.json/state.json) nor a "
                        ".parquet file or a folder of them")
    try:
        if path.is_file():
            if split not in (None, "train"):
                raise DataError(f"hf: {path} is one parquet file, one split; drop :{split}")
            return datasets.load_dataset("parquet", data_files={"train": str(path)}, split="train")
        dd = datasets.load_dataset("parquet", data_dir=str(path))
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"hf: cannot read the parquet data {path}: {e}") from None
    return _choose_split(dd, split, str(path))


def _load_hub(name: str, split: str | None, config: str | None) -> Any:
    import datasets

    offline = _offline() or bool(getattr(datasets.config, "HF_HUB_OFFLINE", False))
    if name.startswith(("/", "./", "../", "~")):
        raise DataError(f"hf: {name} does not exist (a path, not a hub name)")
    try:
        return datasets.load_dataset(name, config, split=split or "train")
    except (ValueError, KeyError) as e:
        if "split" in str(e).lower():
            raise DataError(f"hf: {name} has no split {split or 'train'!r}: {e}") from None
        raise DataError(f"hf: cannot load {name}: {e}") from None
    except Exception as e:  # ConnectionError, DatasetNotFoundError, LocalEntryNotFoundError, ...
        if offline:
            raise DataError(
                f"hf: {name} is not in the local Hugging Face cache and the hub is offline (HF_HUB_OFFLINE/"
                f"HF_DATASETS_OFFLINE): download it once where the network is reachable "
                f"(`python -c \"import datasets; datasets.load_dataset('{name}')\"`), or save it with "
                f"save_to_disk / as parquet and pass hf:PATH ({type(e).__name__}: {e})") from None
        raise DataError(f"hf: cannot load {name!r} from the hub ({type(e).__name__}: {e}); check the name, the "
                        "network, or use a local save_to_disk folder / parquet file") from None


def load_hf(arg: str) -> HuggingFaceDataset:
    """The dataset of ``hf:ARG`` (see the module docstring)."""
    target, split, options = hf_options(arg)
    path = Path(target).expanduser()
    ds = _load_local(path, split) if path.exists() else _load_hub(target, split, options.get("config"))
    if "config" in options and path.exists():
        raise DataError("hf: config= names a hub dataset's configuration; a local dataset has none")
    return HuggingFaceDataset(ds, image_column=options.get("image"), label_column=options.get("label"),
                              channels=parse_channels("hf", options.get("channels")), name=f"hf:{arg}")


def _find_column(features: dict[str, Any], wanted: str | None, kind: type, names: tuple[str, ...],
                 what: str, where: str) -> str:
    if wanted is not None:
        if wanted not in features:
            raise DataError(f"{where}: no column {wanted!r}; the columns are {', '.join(features)}")
        return wanted
    typed = [c for c, f in features.items() if isinstance(f, kind)]
    if typed:
        return typed[0]
    named = [c for c in names if c in features]
    if named:
        return named[0]
    raise DataError(f"{where}: no {what} column (a {kind.__name__} feature or one named {'/'.join(names)}); "
                    f"the columns are {', '.join(features)}: name it with ?{what}=COLUMN")


class HuggingFaceDataset(ImageDataset):
    """A map-style ``datasets.Dataset`` read row by row (see the module docstring for the columns).

    Args:
        dataset: a ``datasets.Dataset`` (not a ``DatasetDict``: pick a split; not an
            ``IterableDataset``: drkit needs random access).
        image_column / label_column: the columns to use (default: detected).
        channels: 1 or 3; None: the first image's (1 for gray, 3 for colour), every image read so.
        name: what the dataset is called in messages and a store's manifest.
    """

    variable_size = True
    key_scheme = "index"  # the row index: what a store records for it (drkit.data.samples.key_scheme)

    def __init__(self, dataset: Any, *, image_column: str | None = None, label_column: str | None = None,
                 channels: int | None = None, name: str | None = None) -> None:
        # datasets (the `sources` extra) is optional and slow to import: imported when used
        import datasets

        where = name or "hf dataset"
        if isinstance(dataset, (datasets.DatasetDict, datasets.IterableDatasetDict)):
            raise DataError(f"{where}: a DatasetDict with splits {', '.join(dataset)}; pass one split "
                            "(dataset['train']), or hf:PATH:SPLIT")
        if isinstance(dataset, datasets.IterableDataset):
            raise DataError(f"{where}: a streamed IterableDataset has no random access, which reinforcement "
                            "and the store's checks need; load it without streaming=True, or write it to "
                            "webdataset shards and use wds:PATTERN")
        if not isinstance(dataset, datasets.Dataset):
            raise DataError(f"{where}: expected a datasets.Dataset, got {type(dataset).__name__}")
        if channels not in (None, 1, 3):
            raise DataError(f"{where}: channels must be 1 (gray) or 3 (RGB), got {channels}")
        features = dict(dataset.features)
        self.image_column = _find_column(features, image_column, datasets.Image, IMAGE_COLUMNS, "image", where)
        self.label_column = _find_column(features, label_column, datasets.ClassLabel, LABEL_COLUMNS, "label", where)
        if self.image_column == self.label_column:
            raise DataError(f"{where}: the image and the label cannot both be column {self.image_column!r}")
        label_feature = features[self.label_column]
        raw = dataset.select_columns([self.label_column]).with_format("numpy")[:][self.label_column]
        raw = np.asarray(raw)
        if isinstance(label_feature, datasets.ClassLabel):
            classes = list(label_feature.names)
        elif raw.dtype.kind in "USO":  # string labels: the sorted names are the classes
            classes = sorted({str(v) for v in raw})
            raw = np.searchsorted(np.asarray(classes), raw.astype(str))
            classes = [str(c) for c in classes]
        elif raw.dtype.kind in "iu":
            classes = None
        else:
            raise DataError(f"{where}: label column {self.label_column!r} holds {raw.dtype} values; it must hold "
                            "class ids (integers) or class names (strings)")
        labels = raw.astype(np.int64).reshape(-1)
        if len(labels) and labels.min() < 0:
            raise DataError(f"{where}: {int((labels < 0).sum())} rows have no label (id < 0, e.g. a test split "
                            "without labels); drkit trains and evaluates on labelled data only")
        n_classes = int(labels.max()) + 1 if len(labels) else 0
        self.classes = classes if classes is not None else [str(i) for i in range(n_classes)]
        if n_classes > len(self.classes):
            raise DataError(f"{where}: label {n_classes - 1} but only {len(self.classes)} class names")
        self.labels = labels
        self.name = name or f"hf:{dataset.info.dataset_name or 'dataset'}"

        images = dataset.select_columns([self.image_column])
        feature = features[self.image_column]
        if isinstance(feature, datasets.Image):
            self._images, self._encoded = images.cast_column(self.image_column, datasets.Image(decode=False)), True
        elif isinstance(feature, dict) and "bytes" in feature:
            self._images, self._encoded = images, True  # a struct of {bytes, path}, as an Image stores it
        else:
            self._images, self._encoded = images.with_format("numpy"), False
        self._nbytes = int(dataset.data.nbytes)
        self.channels = channels
        if len(self.labels):
            first = self.image(0)
            self.channels = channels if channels is not None else (1 if first.shape[0] == 1 else 3)

    def image(self, index: int) -> torch.Tensor:
        if not 0 <= index < len(self.labels):
            raise IndexError(f"sample {index} out of range 0..{len(self.labels) - 1}")
        value = self._images[int(index)][self.image_column]
        where = f"{self.name} row {index}"
        if self._encoded:
            data = value.get("bytes") if isinstance(value, dict) else None
            if data is None:
                path = value.get("path") if isinstance(value, dict) else None
                if not path or not Path(path).is_file():
                    raise DataError(f"{where}: the image has neither bytes nor a readable file ({path!r})")
                data = Path(path).read_bytes()
            return decode_bytes(data, where, self.channels)
        array = np.asarray(value)
        if array.dtype.kind in "iu" and array.dtype != np.uint8:  # lists of ints arrive as int64
            if array.size and (array.min() < 0 or array.max() > 255):
                raise DataError(f"{where}: image values {array.min()}..{array.max()} are not 8-bit (0..255)")
            array = array.astype(np.uint8)
        image = as_uint8_chw(array, where)
        if self.channels is not None and image.shape[0] != self.channels:
            image = to_uint8_channels(image, self.channels)
        return image

    def nbytes(self) -> int:
        return self._nbytes

"""``wds:PATTERN``: webdataset tar shards as a map-style :class:`ImageDataset`.

Reinforcement, evaluation and the store's checks read samples by index (the fingerprint samples
4,096 of them, a mixing policy fetches a random partner), so the shards are indexed once: every
member's header is read with ``tarfile`` (no data), grouped into samples by webdataset's own
``group_by_keys`` / ``base_plus_ext`` — the rules its streaming pipeline uses, so a sample's
``__key__`` here is the one :mod:`drkit.training.streamed` sees — and an image is then one
``pread`` of its bytes. The index (keys, offsets, sizes, labels) is cached per shard under
``wds-index`` in drkit's cache folder (``$DRKIT_CACHE``, else ``$XDG_CACHE_HOME/drkit``, else
``~/.cache/drkit``), keyed by the shard's path, size and
modification time, so a second open costs a file read per shard.

Per sample: the image is the member with extension ``jpg``/``jpeg``/``png``/``webp``/``bmp``/
``gif``/``ppm``/``pgm``/``tif``/``tiff`` (or ``?image=EXT``), the label the member ``cls``/``label``/
``class`` (or ``?label=EXT``) holding a non-negative integer as text; other members (``json``,
``txt``, ...) are ignored. Samples may use different image formats; one sample with two candidate
images or labels is ambiguous and an error, as is a sample with none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tarfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from glob import glob, has_magic
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .base import ImageDataset
from .decode import decode_bytes
from .folders import cache_dir
from .options import parse_channels, split_options

__all__ = ["IMAGE_EXTENSIONS", "LABEL_EXTENSIONS", "WebDatasetSource", "ShardIndex", "expand_shards",
           "parse_label", "pick_member", "wds_options", "default_index_cache"]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "ppm", "pgm", "tif", "tiff")
LABEL_EXTENSIONS = ("cls", "label", "class")
_INDEX_VERSION = 1  # bump when the cached index's layout or grouping rules change
_META = re.compile(r"__[^/]*__($|/)")  # webdataset's skip_meta: members it never yields
_OPTIONS = {"image": "EXT (the image member's extension)", "label": "EXT (the label member's extension)",
            "channels": "1|3"}


def wds_options(arg: str) -> tuple[str, dict[str, Any]]:
    """``PATTERN?image=EXT&label=EXT&channels=1|3`` -> (PATTERN, keyword arguments)."""
    pattern, raw = split_options("wds", arg, _OPTIONS)
    options: dict[str, Any] = {}
    if "image" in raw:
        options["image_ext"] = raw["image"].lower()
    if "label" in raw:
        options["label_ext"] = raw["label"].lower()
    if "channels" in raw:
        options["channels"] = parse_channels("wds", raw["channels"])
    return pattern, options


def expand_shards(pattern: str) -> list[Path]:
    """The shard files of ``pattern``: brace-expanded by webdataset (``train-{000000..000009}.tar``,
    ``a.tar::b.tar``, ``$WDS_*`` variables), then each part globbed if it holds ``*``/``?``/``[``.

    Raises :class:`DataError` when nothing matches, when a listed shard is missing (a brace list
    names every shard: a hole in it is a lost shard, not a smaller dataset) or for remote URLs."""
    # webdataset (the `sources` extra) is optional: imported when a wds: source is opened
    from webdataset.shardlists import expand_urls

    if not pattern:
        raise DataError("wds: give a shard pattern, e.g. wds:/data/train-{000000..000009}.tar")
    paths: list[Path] = []
    missing: list[str] = []
    for url in expand_urls(pattern):
        if re.match(r"^[a-z][a-z0-9+.-]*:", url) and not url.startswith("file:"):
            raise DataError(f"wds: {url} is not a local file; drkit indexes shards for random access, so copy "
                            "them to a local disk (or a mounted file system) first")
        url = url.removeprefix("file:")
        if has_magic(url):
            paths.extend(Path(p) for p in sorted(glob(url)))
        elif Path(url).is_file():
            paths.append(Path(url))
        else:
            missing.append(url)
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DataError(f"wds: {len(missing)} shards of {pattern!r} do not exist: {', '.join(missing[:5])}{more}")
    if not paths:
        raise DataError(f"wds: no files match {pattern!r}")
    seen: set[Path] = set()
    unique = [p for p in paths if not (p.resolve() in seen or seen.add(p.resolve()))]  # type: ignore[func-returns-value]
    return unique


def parse_label(data: bytes, where: str) -> int:
    """A label member's bytes (``b"3"``, ``b"3\\n"``) as a class id."""
    text = data.decode("utf-8", "replace").strip()
    if not re.fullmatch(r"\d+", text):
        raise DataError(f"wds: {where}: the label must be a non-negative integer as text, got {text[:40]!r}")
    return int(text)


@dataclass(frozen=True)
class ShardIndex:
    """Where each sample of one shard lies: key, image byte range, label."""

    path: Path
    keys: np.ndarray  # str, (n,)
    offsets: np.ndarray  # int64 (n,): the image member's first data byte
    sizes: np.ndarray  # int64 (n,): its length
    labels: np.ndarray  # int64 (n,)

    def __len__(self) -> int:
        return len(self.keys)


def pick_member(sample: dict[str, Any], wanted: str | None, candidates: Sequence[str], what: str, where: str) -> Any:
    """The value of ``sample``'s image or label member (``what``): extension ``wanted``, else the one
    of ``candidates`` present; a :class:`DataError` when there is none, or several."""
    if wanted is not None:
        if wanted not in sample:
            have = sorted(k for k in sample if not k.startswith("__"))
            raise DataError(f"wds: {where} has no {wanted!r} member (it has {have})")
        return sample[wanted]
    found = [ext for ext in candidates if ext in sample]
    if not found:
        have = sorted(k for k in sample if not k.startswith("__"))
        raise DataError(f"wds: {where} has no {what} (one of {', '.join(candidates)}; it has {have}); name its "
                        f"extension with ?{'image' if what == 'image' else 'label'}=EXT")
    if len(found) > 1:
        raise DataError(f"wds: {where} has several {what}s ({', '.join(found)}): name the one to use with "
                        f"?{'image' if what == 'image' else 'label'}=EXT")
    return sample[found[0]]


def _index_shard(path: Path, image_ext: str | None, label_ext: str | None) -> ShardIndex:
    """Read every member header of ``path`` (not the data) and group them into samples by
    webdataset's ``group_by_keys``: the member's (offset, size) stands in for its bytes."""
    from webdataset.tariterators import group_by_keys

    try:
        tar = tarfile.open(path, mode="r:")  # uncompressed: members can be read in place
    except tarfile.ReadError as e:
        raise DataError(f"wds: {path} is not an uncompressed tar file ({e}); random access needs plain .tar "
                        "shards (decompress .tar.gz shards first)") from None
    keys: list[str] = []
    offsets: list[int] = []
    sizes: list[int] = []
    labels: list[int] = []
    with tar, open(path, "rb") as raw:

        def members() -> Iterator[dict[str, Any]]:
            for m in tar:
                if m.isreg() and not _META.match(m.name):
                    yield {"fname": m.name, "data": (m.offset_data, m.size), "__url__": str(path)}

        try:
            for sample in group_by_keys(members()):
                where = f"sample {sample['__key__']!r} of {path}"
                off, size = pick_member(sample, image_ext, IMAGE_EXTENSIONS, "image", where)
                loff, lsize = pick_member(sample, label_ext, LABEL_EXTENSIONS, "label", where)
                keys.append(sample["__key__"])
                offsets.append(off)
                sizes.append(size)
                labels.append(parse_label(os.pread(raw.fileno(), lsize, loff), where))
        except (tarfile.TarError, ValueError) as e:  # ValueError: webdataset's duplicate member names
            raise DataError(f"wds: cannot index {path}: {e}") from None
    return ShardIndex(path, np.asarray(keys, dtype=str), np.asarray(offsets, dtype=np.int64),
                      np.asarray(sizes, dtype=np.int64), np.asarray(labels, dtype=np.int64))


def _cache_file(path: Path, image_ext: str | None, label_ext: str | None, cache_dir: Path) -> Path:
    st = path.stat()
    ident = json.dumps([_INDEX_VERSION, str(path.resolve()), st.st_size, st.st_mtime_ns, image_ext, label_ext])
    return cache_dir / f"{hashlib.sha256(ident.encode()).hexdigest()[:32]}.npz"


def _cached_index(path: Path, image_ext: str | None, label_ext: str | None, cache_dir: Path | None) -> ShardIndex:
    cache = _cache_file(path, image_ext, label_ext, cache_dir) if cache_dir is not None else None
    if cache is not None and cache.is_file():
        try:  # arrays only: a cache file is data, never code
            with np.load(cache, allow_pickle=False) as z:
                return ShardIndex(path, z["keys"], z["offsets"], z["sizes"], z["labels"])
        except (OSError, ValueError, KeyError) as e:
            log.warning("wds: ignoring the unreadable index cache %s (%s); re-indexing %s", cache, e, path)
    index = _index_shard(path, image_ext, label_ext)
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f"{cache.stem}.{os.getpid()}.tmp.npz")
            np.savez(tmp, keys=index.keys, offsets=index.offsets, sizes=index.sizes, labels=index.labels)
            tmp.replace(cache)
        except OSError as e:  # a read-only home is no reason to fail: the index is only slower next time
            log.info("wds: cannot cache the index of %s in %s: %s", path, cache.parent, e)
    return index


def default_index_cache() -> Path:
    """``wds-index`` in drkit's cache folder (:func:`drkit.data.folders.cache_dir`)."""
    return cache_dir() / "wds-index"


def _class_names(folder: Path) -> list[str] | None:
    """``classes.txt`` (one name per line) or ``classes.json`` (a list of names) beside the shards."""
    txt, js = folder / "classes.txt", folder / "classes.json"
    if txt.is_file():
        return [line.strip() for line in txt.read_text().splitlines() if line.strip()]
    if js.is_file():
        try:
            names = json.loads(js.read_text())
        except ValueError as e:
            raise DataError(f"wds: {js} is not valid JSON: {e}") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DataError(f"wds: {js} must hold a JSON list of class names, index = label id")
        return names
    return None


class WebDatasetSource(ImageDataset):
    """Webdataset tar shards, read by index (see the module docstring for the index and members).

    Samples are ordered shard by shard (in the pattern's order), in each shard as stored. Keys are
    the samples' ``__key__`` and must be unique across shards: a store finds its records by them.

    Class names come from ``classes.txt`` (one per line) or ``classes.json`` (a list) in the first
    shard's folder; without one, the classes are ``"0"`` .. ``str(max label)``: the class count is
    the largest label + 1, so a split that misses the last classes counts fewer (add a
    ``classes.txt`` to fix it).

    Args:
        pattern: shards, brace-expanded (:func:`expand_shards`).
        image_ext: the image member's extension (default: the one of :data:`IMAGE_EXTENSIONS` present).
        label_ext: the label member's extension (default: the one of :data:`LABEL_EXTENSIONS` present).
        channels: 1 or 3; None: the first image's (1 for gray, 3 for colour), every image read so.
        index_cache: folder of the cached shard indices; None: :func:`default_index_cache`;
            False: no cache.
    """

    variable_size = True
    key_scheme = "__key__"  # what a store records for its samples (drkit.data.samples.key_scheme)

    def __init__(self, pattern: str, *, image_ext: str | None = None, label_ext: str | None = None,
                 channels: int | None = None, index_cache: str | os.PathLike[str] | bool | None = None) -> None:
        if channels not in (None, 1, 3):
            raise DataError(f"wds: channels must be 1 (gray) or 3 (RGB), got {channels}")
        self.pattern, self.image_ext, self.label_ext = pattern, image_ext, label_ext
        self.shards = expand_shards(pattern)
        cache_dir = (None if index_cache is False else default_index_cache() if index_cache in (None, True)
                     else Path(index_cache))  # type: ignore[arg-type]
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1, len(self.shards))) as pool:
            self.indices: list[ShardIndex] = list(pool.map(
                lambda p: _cached_index(p, image_ext, label_ext, cache_dir), self.shards))
        empty = [ix.path for ix in self.indices if len(ix) == 0]
        if empty:
            raise DataError(f"wds: {len(empty)} shards hold no samples: {', '.join(map(str, empty[:5]))}")
        #: first sample of each shard, and the total at the end
        self.starts = np.cumsum([0] + [len(ix) for ix in self.indices]).astype(np.int64)
        self.keys = np.concatenate([ix.keys for ix in self.indices])
        self._offsets = np.concatenate([ix.offsets for ix in self.indices])
        self._sizes = np.concatenate([ix.sizes for ix in self.indices])
        self.labels = np.concatenate([ix.labels for ix in self.indices])
        _, first, counts = np.unique(self.keys, return_index=True, return_counts=True)
        if (counts > 1).any():
            dup = self.keys[first[counts > 1][0]]
            raise DataError(f"wds: {int((counts > 1).sum())} keys appear in more than one sample (e.g. {dup!r}) "
                            f"across {pattern!r}; a store finds records by key, so write the shards with "
                            "unique __key__s (e.g. prefix each with its shard's name)")
        n_classes = int(self.labels.max()) + 1
        names = _class_names(self.shards[0].parent)
        if names is not None and len(names) < n_classes:
            raise DataError(f"wds: label {n_classes - 1} but {self.shards[0].parent} names only "
                            f"{len(names)} classes")
        self.classes = names if names is not None else [str(i) for i in range(n_classes)]
        self.name = f"wds:{pattern}"
        self._files: dict[int, Any] = {}
        self.channels = channels if channels is not None else (1 if self._decode(0, None).shape[0] == 1 else 3)

    def shard_of(self, index: int) -> int:
        return int(np.searchsorted(self.starts, index, side="right") - 1)

    def encoded(self, index: int) -> bytes:
        """Sample ``index``'s image member as stored (one ``pread``)."""
        if not 0 <= index < len(self.labels):
            raise IndexError(f"sample {index} out of range 0..{len(self.labels) - 1}")
        s = self.shard_of(index)
        f = self._files.get(s)
        if f is None:
            f = self._files[s] = open(self.shards[s], "rb")  # noqa: SIM115 -- kept open for the next reads
        return os.pread(f.fileno(), int(self._sizes[index]), int(self._offsets[index]))

    def decode(self, index: int, data: bytes, channels: int | None = None) -> torch.Tensor:
        """Sample ``index``'s encoded image ``data`` decoded (as :meth:`image` does, with ``channels``)."""
        where = f"{str(self.keys[index])!r} in {self.shards[self.shard_of(index)]}"
        return decode_bytes(data, where, self.channels if channels is None else channels)

    def _decode(self, index: int, channels: int | None) -> torch.Tensor:
        return decode_bytes(self.encoded(index), f"{str(self.keys[index])!r} in {self.shards[self.shard_of(index)]}",
                            channels)

    def image(self, index: int) -> torch.Tensor:
        return self._decode(index, self.channels)

    def key(self, index: int) -> str:
        return str(self.keys[index])

    def shard_lengths(self) -> np.ndarray:
        return np.diff(self.starts)

    def nbytes(self) -> int:
        return sum(p.stat().st_size for p in self.shards)

    # DataLoader workers (spawn) get a copy without open files; each reopens lazily. pread does not
    # move a shared offset, so forked workers may share the parent's files.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_files"] = {}
        return state

    def __del__(self) -> None:
        for f in getattr(self, "_files", {}).values():
            f.close()

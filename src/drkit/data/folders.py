"""Image folders: ``root/<class_name>/<image>``, scanned once when opened.

Scanning decodes every file (to name every unreadable one, and to count gray and colour sources),
and the dataset fingerprint decodes up to 4,096 more — minutes on ImageNet, every time a store is
opened on the folder. :class:`FolderCache` keeps, per folder, what those reads found, keyed by each
file's (relative path, size, mtime_ns, ctime_ns, inode): a file that changed in any of these is decoded again,
so a replaced or edited image is still caught. It is JSON under ``$DRKIT_CACHE`` (default
``$XDG_CACHE_HOME/drkit``, else ``~/.cache/drkit``), never inside the image folder; a cache that
cannot be read or written is logged and rebuilt (or skipped), never trusted in part.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .base import ImageDataset
from .decode import IMAGE_SUFFIXES, decode_file, read_image, unreadable_reason

__all__ = ["ImageFolderDataset", "FolderCache", "cache_dir", "folder_options"]

log = logging.getLogger(__name__)

_CACHE_VERSION = 1
_FINGERPRINTS_KEPT = 8  # content hashes remembered per folder (other channel counts, subsets)


def cache_dir() -> Path:
    """drkit's cache folder: ``$DRKIT_CACHE``, else ``$XDG_CACHE_HOME/drkit``, else ``~/.cache/drkit``."""
    if os.environ.get("DRKIT_CACHE"):
        return Path(os.environ["DRKIT_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "drkit"


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    # ctime too: an edit that puts the size and mtime back (cp -p, os.utime) still changes it
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


class FolderCache:
    """What reading an image folder found, per file and keyed by its stat, in one JSON file.

    ``files`` maps a relative path to ``[size, mtime_ns, ctime_ns, inode, channels, why, height, width]`` (the
    scan's result: 1 gray, 3 colour, 0 unreadable, and why); ``fingerprints`` maps a digest of the hashed files'
    keys (and the channel count they were read with) to the content hash computed from them.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:24]
        self.path = cache_dir() / "folders" / f"{digest}.json"
        self.files: dict[str, list[Any]] = {}
        self.fingerprints: dict[str, str] = {}
        self._dirty = False
        self._load()

    def _load(self) -> None:
        if not self.path.is_file():
            return
        try:
            d = json.loads(self.path.read_text())
            if d.get("version") != _CACHE_VERSION or d.get("root") != str(self.root.resolve()):
                raise ValueError("written for another folder or drkit version")
            files, fps = d["files"], d["fingerprints"]
            if not (isinstance(files, dict) and isinstance(fps, dict) and all(
                    isinstance(v, list) and len(v) == 8 and all(isinstance(x, int) for x in (*v[:5], *v[6:]))
                    and (v[5] is None or isinstance(v[5], str)) for v in files.values())
                    and all(isinstance(v, str) for v in fps.values())):
                raise ValueError("unexpected content")
            self.files, self.fingerprints = files, fps
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:  # JSONDecodeError is a ValueError
            log.warning("ignoring the damaged folder cache %s (%s); rebuilding it", self.path, e)
            self._dirty = True

    def scanned(self, rel: str, key: list[int]) -> tuple[int, str | None, int, int] | None:
        """The cached scan result of ``rel`` if its stat is still ``key``."""
        v = self.files.get(rel)
        return (int(v[4]), v[5], int(v[6]), int(v[7])) if v is not None and v[:4] == key else None

    def put_scan(self, rel: str, key: list[int], result: tuple[int, str | None, int, int]) -> None:
        self.files[rel] = [*key, *result]
        self._dirty = True

    def keep_only(self, rels: set[str]) -> None:
        """Forget files no longer in the folder."""
        gone = set(self.files) - rels
        for r in gone:
            del self.files[r]
        self._dirty = self._dirty or bool(gone)

    def fingerprint(self, key: str) -> str | None:
        return self.fingerprints.get(key)

    def put_fingerprint(self, key: str, content_sha256: str) -> None:
        self.fingerprints.pop(key, None)
        self.fingerprints[key] = content_sha256  # newest last; the oldest go first
        while len(self.fingerprints) > _FINGERPRINTS_KEPT:
            del self.fingerprints[next(iter(self.fingerprints))]
        self._dirty = True

    def save(self) -> None:
        """Write the cache if it changed (atomically); an unwritable cache folder is only logged."""
        if not self._dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"version": _CACHE_VERSION, "root": str(self.root.resolve()),
                                       "files": self.files, "fingerprints": self.fingerprints}))
            tmp.replace(self.path)
            self._dirty = False
        except OSError as e:
            log.warning("cannot write the folder cache %s (%s): the next open decodes the folder again "
                        "(set DRKIT_CACHE to a writable folder)", self.path, e)


def _scan(path: Path) -> tuple[int, str | None, int, int]:
    """(1 for a gray source, 3 for a colour one, or 0; why it cannot be read, or None; height; width)."""
    try:
        img = decode_file(path)
        if img.ndim != 3 or not 1 <= img.shape[0] <= 4:
            return 0, f"decodes to shape {tuple(img.shape)}, not an image", 0, 0
        return (1 if img.shape[0] <= 2 else 3), None, int(img.shape[1]), int(img.shape[2])
    except Exception as e:
        return 0, unreadable_reason(path, e), 0, 0


class ImageFolderDataset(ImageDataset):
    """``root/<class_name>/<image>``; images are decoded on access and may differ in size.

    The folder is scanned when opened (every file decoded, or its result taken from the
    :class:`FolderCache` while its stat is unchanged), so that every unreadable file is
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

        self.cache = FolderCache(self.root)
        rels = [f.relative_to(self.root).as_posix() for f in files]
        keys = [_stat_key(f) for f in files]
        scanned: list[tuple[int, str | None, int, int] | None] = [self.cache.scanned(r, k) for r, k in zip(rels, keys, strict=True)]
        todo = [i for i, v in enumerate(scanned) if v is None]
        if todo:
            with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
                for i, result in zip(todo, pool.map(_scan, [files[i] for i in todo]), strict=True):
                    scanned[i] = result
                    self.cache.put_scan(rels[i], keys[i], result)
        self.cache.keep_only(set(rels))
        self.cache.save()
        self.skipped: list[tuple[Path, str]] = [(f, s[1]) for f, s in zip(files, scanned, strict=True) if s and s[1]]
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
        keep = [k for k, s in enumerate(scanned) if s is not None and s[1] is None]
        if not keep:
            raise DataError(f"imagefolder: none of the {len(files)} files under {self.root} can be read")
        gray = sum(scanned[k][0] == 1 for k in keep)  # type: ignore[index]
        self.channels = channels or (1 if gray > len(keep) - gray else 3)
        if channels is None and 0 < gray < len(keep):
            log.warning("imagefolder %s: %d gray and %d colour images; all read as %s (pass channels= to choose)",
                        self.root, gray, len(keep) - gray, "gray" if self.channels == 1 else "RGB")
        self.files = [files[k] for k in keep]
        self._first_hw = tuple(scanned[keep[0]][2:])  # type: ignore[index]
        self.labels = np.asarray([labels[k] for k in keep], dtype=np.int64)
        self.name = f"imagefolder:{self.root}"

    def image(self, index: int) -> torch.Tensor:
        return read_image(self.files[index], self.channels)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The first image's shape, as the scan found it (no decode)."""
        return (self.channels, *self._first_hw)  # type: ignore[return-value]

    def key(self, index: int) -> str:
        return self.files[index].relative_to(self.root).as_posix()

    def content_key(self, indices: list[int] | np.ndarray) -> str:
        """A digest of what the images at ``indices`` are read from — each file's relative path,
        size, mtime_ns, ctime_ns and inode, and the channel count — taken now: equal digests mean the same
        bytes decoded the same way, so a content hash over them can be reused
        (:func:`~drkit.data.dataset_fingerprint`)."""
        h = hashlib.sha256(f"channels={self.channels}".encode())
        for i in indices:
            f = self.files[int(i)]
            h.update(json.dumps([f.relative_to(self.root).as_posix(), _stat_key(f)]).encode())
        return h.hexdigest()

    def nbytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)


def folder_options(arg: str) -> tuple[str, dict[str, Any]]:
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

"""Image folders: ``root/<class_name>/<image>``, scanned once when opened."""

from __future__ import annotations

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

__all__ = ["ImageFolderDataset", "folder_options"]

log = logging.getLogger(__name__)


def _scan(path: Path) -> tuple[int, str | None]:
    """(1 for a gray source, 3 for a colour one, or 0; why it cannot be read, or None)."""
    try:
        img = decode_file(path)
        if img.ndim != 3 or not 1 <= img.shape[0] <= 4:
            return 0, f"decodes to shape {tuple(img.shape)}, not an image"
        return (1 if img.shape[0] <= 2 else 3), None
    except Exception as e:
        return 0, unreadable_reason(path, e)


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

    def key(self, index: int) -> str:
        return self.files[index].relative_to(self.root).as_posix()

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

"""A store's ``.npy`` files, read as data: header checked, then memory-mapped or read once.

A shard or key table is a plain ``.npy`` file (format 1.0 or 2.0, no pickles). Two ways in:

- :func:`map_array`: the reading path. The header is parsed (never ``allow_pickle``), checked
  against the dtype and shape the manifest promises, and the data memory-mapped at its offset,
  so a record is one read and nothing is mapped for a file of another layout.
- :func:`read_array`: the ``verify`` path. The file is read once into memory, hashed from that
  buffer and viewed as an array, instead of hashing it and then opening it again to map it
  (``benchmarks/scale.py``: a store of small shards verified at 0.14–0.26× ``sha256sum``'s speed
  when every file was read twice and its header parsed twice).

Headers repeat from shard to shard (only the last shard's shape differs), so their parse
(numpy's ``ast.literal_eval`` of a dict, ~40 µs) is cached by the header's bytes.
"""

from __future__ import annotations

import functools
import hashlib
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import StoreCorruptError

_MAGIC = b"\x93NUMPY"
NPY_HEADER_MAX = 1 << 16  # bytes of a .npy header, at most (numpy's own are < 200 for a store's dtypes)


def sha256_file(path: Path) -> str:
    """The sha256 of ``path``, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


@functools.lru_cache(maxsize=512)
def _parse_header(prefix: bytes) -> tuple[tuple[int, ...], bool, np.dtype]:
    f = io.BytesIO(prefix)
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read(f)
    return tuple(shape), bool(fortran), dtype


def header(head: bytes, where: Path | str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """``(shape, fortran_order, dtype, data offset)`` of the ``.npy`` file whose first bytes are
    ``head`` (at least the whole header); a :class:`StoreCorruptError` for anything else."""
    if head[:6] != _MAGIC or len(head) < 10:
        raise StoreCorruptError(f"{where} is not a .npy file (no NUMPY magic)")
    version = (head[6], head[7])
    if version == (1, 0):
        offset = 10 + int.from_bytes(head[8:10], "little")
    elif version == (2, 0) and len(head) >= 12:
        offset = 12 + int.from_bytes(head[8:12], "little")
    else:
        raise StoreCorruptError(f"{where}: .npy format version {version} (drkit writes 1.0)")
    if offset > min(len(head), NPY_HEADER_MAX):
        raise StoreCorruptError(f"{where}: a .npy header of {offset} bytes is truncated or too long")
    try:
        shape, fortran, dtype = _parse_header(bytes(head[:offset]))
    except (ValueError, TypeError, SyntaxError) as e:
        raise StoreCorruptError(f"cannot read {where}: {e}") from e
    return shape, fortran, dtype, offset


def _check_layout(where: Path, got: tuple[tuple[int, ...], bool, np.dtype], dtype: np.dtype | Callable[[np.dtype], bool],
                  shape: tuple[int, ...], what: str) -> np.dtype:
    head_shape, fortran, head_dtype = got
    ok = dtype(head_dtype) if callable(dtype) else head_dtype == dtype
    if not ok or head_shape != shape or fortran:
        raise StoreCorruptError(f"{where} has dtype/shape {head_dtype}/{head_shape}, not {what}")
    return head_dtype


def map_array(path: Path, dtype: np.dtype | Callable[[np.dtype], bool], shape: tuple[int, ...], *,
              what: str = "what the manifest says") -> np.ndarray:
    """``path`` memory-mapped read-only as a plain ndarray of ``shape`` and ``dtype`` (or of any
    dtype for which the callable ``dtype`` is true), header first:
    nothing is mapped for a file of another layout). A plain ndarray, not ``np.memmap``: numpy's
    memmap subclass runs Python code on every index (half of a warm record read at 1.28 M samples)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
            if len(head) >= 10 and head[6:8] == b"\x02\x00":
                need = 12 + int.from_bytes(head[8:12], "little")
                if need > len(head):
                    head += f.read(min(need, NPY_HEADER_MAX) - len(head))
        shape_, fortran, dtype_, offset = header(head, path)
        dtype_ = _check_layout(path, (shape_, fortran, dtype_), dtype, shape, what)
        arr = np.memmap(path, dtype=dtype_, mode="r", offset=offset, shape=shape, order="C")
    except StoreCorruptError:
        raise
    except (OSError, ValueError, TypeError) as e:  # short file: mmap length > file size
        raise StoreCorruptError(f"cannot read {path}: {e}") from e
    return arr.view(np.ndarray)


def read_array(path: Path, dtype: np.dtype | Callable[[np.dtype], bool], shape: tuple[int, ...],
               sha256: str | None, *, what: str = "what the manifest says") -> np.ndarray:
    """``path`` read once into memory, its sha256 checked against ``sha256`` (when given) from the
    same buffer, its header against ``dtype`` and ``shape`` (as :func:`map_array`); the array, read-only."""
    try:
        buf = path.read_bytes()
    except OSError as e:
        raise StoreCorruptError(f"cannot read {path}: {e}") from e
    if sha256 is not None and hashlib.sha256(buf).hexdigest() != sha256:
        raise StoreCorruptError(f"{path} fails its checksum (bit flip or modified file); re-create the store "
                                "or restore the file")
    shape_, fortran, dtype_, offset = header(buf[:NPY_HEADER_MAX], path)
    dtype_ = _check_layout(path, (shape_, fortran, dtype_), dtype, shape, what)
    count = int(np.prod(shape, dtype=np.int64))
    if len(buf) - offset < count * dtype_.itemsize:
        raise StoreCorruptError(f"{path} is truncated: {len(buf) - offset} data bytes for {count} items")
    return np.frombuffer(buf, dtype=dtype_, count=count, offset=offset).reshape(shape)

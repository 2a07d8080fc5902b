"""The writing side of a store: the one-writer lock and atomic files (shards, key tables, the manifest).

Everything that puts bytes into a store directory goes through here, whichever engine computed
them: :class:`ShardWriter` writes a shard and its key table to temporary names, fsyncs and renames
them; :func:`write_manifest` replaces ``manifest.json`` the same way; :class:`WriterLock` makes sure
one run writes a store at a time. The reading side (:class:`~drkit.reinforcement.store.Store`) never
imports this module.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from ..data.samples import is_key_dtype
from ..errors import StoreError, StoreLockedError
from .manifest import keys_file_name, seal, shard_file_name
from .npyfile import sha256_file
from .store import MANIFEST, ShardInfo

try:
    import fcntl
except ImportError:  # not POSIX: no advisory locks (a warning says so)
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_FILE", "WriterLock", "ShardWriter", "write_manifest"]

log = logging.getLogger(__name__)

LOCK_FILE = ".drkit-writer.lock"


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` atomically, with its checksums filled in (:func:`drkit.reinforcement.manifest.seal`)."""
    text = json.dumps(seal(manifest), indent=2, sort_keys=True) + "\n"
    _atomic_write_bytes(root / MANIFEST, text.encode())


_HELD_LOCKS: weakref.WeakSet[WriterLock] = weakref.WeakSet()


def _drop_locks_in_child() -> None:
    """After a fork: the child closes its copy of every held lock's descriptor. A ``flock`` belongs
    to the open file, so DataLoader workers forked by the writer would otherwise keep the store
    locked for a moment after the writer is killed, and an immediate rerun would be refused."""
    for lock in list(_HELD_LOCKS):
        fd, lock._fd = lock._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
    _HELD_LOCKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_locks_in_child)


class WriterLock:
    """The one-writer lock of a store directory: ``fcntl.flock`` on ``.drkit-writer.lock``, which
    holds the writer's PID and host. A second writer gets :class:`~drkit.errors.StoreLockedError`
    at once (no waiting). The kernel drops the lock when its process dies — forked children (the
    DataLoader's workers) do not keep it, see :func:`_drop_locks_in_child` — so a killed run never
    leaves a store locked; :meth:`release` removes the file.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.path = self.root / LOCK_FILE
        self._fd: int | None = None
        if fcntl is None:
            log.warning("%s: no file locking on this platform; make sure one run writes it at a time", self.root)
            return
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = self._holder(fd)
                os.close(fd)
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise StoreError(f"cannot lock {self.path}: {e}") from e
                raise StoreLockedError(
                    f"{self.root} is in use by {holder}: another run is writing this store. Wait for it to "
                    "finish (then rerun to resume or reuse it), or choose another --out"
                ) from None
            try:  # a releasing writer may have removed the file between our open and our lock
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        self._fd = fd
        _HELD_LOCKS.add(self)

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            pid, _, host = os.pread(fd, 256, 0).decode("utf-8", "replace").strip().partition(" ")
        except OSError:
            pid, host = "", ""
        return f"PID {pid} on {host or 'this host'}" if pid else "another process (PID not written yet)"

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Remove the lock file and unlock (idempotent)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        _HELD_LOCKS.discard(self)
        try:
            self.path.unlink(missing_ok=True)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class ShardWriter:
    """Writes one shard atomically (temporary name, fsync, rename) and returns its entry.

    Shared by every engine: whoever computes a shard's records, this is what puts them on disk.
    With ``lock=True`` it first takes the store's :class:`WriterLock` (released by :meth:`close`).
    """

    def __init__(self, root: str | os.PathLike[str], *, lock: bool = False) -> None:
        self.root = Path(root)
        self.lock = WriterLock(self.root) if lock else None

    def close(self) -> None:
        """Release the writer lock, if this writer holds one."""
        if self.lock is not None:
            self.lock.release()

    file_name = staticmethod(shard_file_name)
    keys_file_name = staticmethod(keys_file_name)

    def write(self, index: int, start: int, records: np.ndarray, keys: np.ndarray | None = None) -> ShardInfo:
        """Write shard ``index`` (and its key table ``keys``, one row per sample, when given) and
        return its entry. The key table is renamed into place first: a shard file never lies in the
        store without its keys (a run killed between the two renames recomputes the shard)."""
        extra: dict[str, Any] = {}
        if keys is not None:
            if len(keys) != len(records) or not is_key_dtype(keys.dtype):
                raise StoreError(f"shard {index}: a key table of {len(keys)} rows of {keys.dtype} for "
                                 f"{len(records)} samples")
            name = keys_file_name(index)
            size, digest = self.save(name, keys)
            extra = {"keys_file": name, "keys_bytes": size, "keys_sha256": digest}
        name = self.file_name(index)
        size, digest = self.save(name, records)
        return ShardInfo(index, start, start + len(records), name, size, digest, **extra)

    def save(self, name: str, array: np.ndarray) -> tuple[int, str]:
        """Write ``array`` as ``name`` in the store atomically (temporary name, fsync, rename);
        returns its size and sha256."""
        tmp = self.root / (name + ".tmp")
        try:
            with open(tmp, "wb") as f:
                np.save(f, np.ascontiguousarray(array), allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
            size, digest = tmp.stat().st_size, sha256_file(tmp)
            os.replace(tmp, self.root / name)
        finally:
            tmp.unlink(missing_ok=True)
        return size, digest

    def clean_temporaries(self) -> None:
        for p in self.root.glob("*.tmp"):
            p.unlink()

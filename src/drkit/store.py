"""The reinforced-dataset store: fixed-width records in shards, plus a JSON manifest.

Layout of a store directory::

    manifest.json        schema version, settings (dataset fingerprint, policy, teacher, N, k,
                         record dtype, ...), one entry per complete shard (rows, bytes, sha256)
    shard-00000.npy      records of samples [0, shard_size) × all augmentations
    shard-00001.npy      ...

A shard is a ``.npy`` array of shape ``(samples, num_augs)`` with a structured dtype: the policy's
parameter fields, then ``probs`` (float16, top-k values) and ``classes`` (smallest unsigned int,
top-k class ids; absent when ``k >= num_classes``). ``.npy`` is read with ``allow_pickle=False``
and memory-mapped, so opening a stranger's store runs no code and one record is one read.

Shards are written to a temporary name and renamed when complete (``ShardWriter``); the manifest
is rewritten atomically after each shard and marked ``complete`` at the end. The manifest holds
nothing that varies between runs (no timestamps), so a store is byte-identical however it was made.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .data import ImageDataset, dataset_fingerprint
from .errors import StoreCorruptError, StoreError, StoreMismatchError
from .policies import Policy, PolicyConfig
from .targets import class_id_dtype

__all__ = ["SCHEMA_VERSION", "MANIFEST", "Store", "ShardWriter", "ShardInfo", "record_dtype",
           "read_manifest", "write_manifest", "shard_ranges"]

SCHEMA_VERSION = 1
FORMAT = "drkit-store"
MANIFEST = "manifest.json"
_ALLOWED_KINDS = set("uif")  # record fields are plain unsigned/signed ints and floats


def record_dtype(param_dtype: np.dtype, num_classes: int, topk: int) -> np.dtype:
    """Parameter fields + ``probs`` (float16) + ``classes`` (ids; only when ``topk < num_classes``)."""
    fields: list[tuple[Any, ...]] = list(param_dtype.descr)  # explicit byte order, no padding
    if topk >= num_classes:
        fields.append(("probs", "<f2", (num_classes,)))
    else:
        fields += [("probs", "<f2", (topk,)), ("classes", class_id_dtype(num_classes), (topk,))]
    return np.dtype(fields)


def dtype_to_json(dt: np.dtype) -> list[list[Any]]:
    out = []
    for name in dt.names:
        sub = dt.fields[name][0]
        base, shape = (sub.subdtype if sub.subdtype else (sub, ()))
        out.append([name, base.str, list(shape)])
    return out


def dtype_from_json(spec: list[list[Any]]) -> np.dtype:
    try:
        fields = []
        for name, base, shape in spec:
            dt = np.dtype(str(base))
            if dt.kind not in _ALLOWED_KINDS:
                raise ValueError(f"field {name!r} has type {base}")
            fields.append((str(name), dt, tuple(int(s) for s in shape)))
        return np.dtype(fields)
    except (TypeError, ValueError) as e:
        raise StoreCorruptError(f"manifest record_dtype is invalid: {e}") from e


def shard_ranges(num_samples: int, shard_size: int) -> list[tuple[int, int, int]]:
    """``(shard index, first sample, end sample)`` for every shard."""
    return [(s, a, min(a + shard_size, num_samples)) for s, a in enumerate(range(0, num_samples, shard_size))]


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    _atomic_write_bytes(root / MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())


def read_manifest(root: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse and check ``manifest.json`` (format, schema version); no shard is touched."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise StoreError(f"{root} is not a drkit store: {MANIFEST} is missing")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StoreCorruptError(f"{path} is not valid JSON ({e}); the store is damaged") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StoreError(f"{path} is not a drkit store manifest (format != {FORMAT!r})")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise StoreError(
            f"{root}: store schema version {version!r} is unknown to this drkit (reads version "
            f"{SCHEMA_VERSION}); upgrade drkit, or re-create the store with this version"
        )
    return manifest


@dataclass(frozen=True)
class ShardInfo:
    index: int
    start: int
    stop: int
    file: str
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class ShardWriter:
    """Writes one shard atomically (temporary name, fsync, rename) and returns its entry.

    Shared by every engine: whoever computes a shard's records, this is what puts them on disk.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @staticmethod
    def file_name(index: int) -> str:
        return f"shard-{index:05d}.npy"

    def write(self, index: int, start: int, records: np.ndarray) -> ShardInfo:
        name = self.file_name(index)
        tmp = self.root / (name + ".tmp")
        try:
            with open(tmp, "wb") as f:
                np.save(f, np.ascontiguousarray(records), allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
            info = ShardInfo(index, start, start + len(records), name, tmp.stat().st_size, _sha256_file(tmp))
            os.replace(tmp, self.root / name)
        finally:
            tmp.unlink(missing_ok=True)
        return info

    def clean_temporaries(self) -> None:
        for p in self.root.glob("*.tmp"):
            p.unlink()


class Store:
    """A complete, read-only reinforced dataset.

    ``Store.open(path, dataset=...)`` checks the manifest, that every shard is present and of the
    right size, and (with a dataset) the dataset fingerprint; each shard's checksum is verified
    the first time it is read (``verify=True``). Records are memory-mapped.

    Example:
        >>> store = Store.open("digits+", dataset=load_dataset("digits"))  # doctest: +SKIP
        >>> store.record(0, 3)["probs"]  # doctest: +SKIP
    """

    def __init__(self, root: Path, manifest: dict[str, Any], *, verify: bool = True) -> None:
        self.root = root
        self.manifest = manifest
        self.settings: dict[str, Any] = manifest["settings"]
        self.verify_checksums = verify
        self.record_dtype = dtype_from_json(self.settings["record_dtype"])
        self.shards = [ShardInfo(**s) for s in manifest["shards"]]
        self._maps: dict[int, np.ndarray] = {}
        self.run_stats: dict[str, Any] | None = None  # set by the engine that just wrote the store

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, dataset: ImageDataset | None = None,
             verify: bool = True) -> Store:
        root = Path(path)
        manifest = read_manifest(root)
        if not manifest.get("complete"):
            raise StoreError(
                f"{root} is incomplete ({len(manifest.get('shards', []))} shards done): rerun the same "
                "`drkit reinforce` command to resume it"
            )
        store = cls(root, manifest, verify=verify)
        expected = shard_ranges(store.num_samples, store.settings["shard_size"])
        if [(s.index, s.start, s.stop) for s in store.shards] != expected:
            raise StoreCorruptError(f"{root}: the manifest's shard list does not cover the dataset")
        for s in store.shards:
            p = root / s.file
            if not p.is_file():
                raise StoreCorruptError(f"{root}: shard {s.file} is missing")
            size = p.stat().st_size
            if size != s.bytes:
                raise StoreCorruptError(
                    f"{root}: shard {s.file} is {size} bytes, the manifest says {s.bytes} "
                    "(truncated or replaced); re-create the store or restore the file"
                )
        if dataset is not None:
            store.check_dataset(dataset)
        return store

    def check_dataset(self, dataset: ImageDataset) -> None:
        """Raise :class:`StoreMismatchError` unless ``dataset`` is the one the store was made from."""
        want = self.settings["dataset"]
        if len(dataset) != want["length"]:
            raise StoreMismatchError(
                f"{self.root} was made from a dataset of {want['length']} samples; this one has {len(dataset)}"
            )
        got = dataset_fingerprint(dataset)
        for key, what in (("num_classes", "number of classes"), ("image_shape", "image shape"),
                          ("labels_sha256", "labels"), ("content_sha256", "image content")):
            if got[key] != want[key]:
                raise StoreMismatchError(
                    f"{self.root} was made from another dataset: the {what} differ "
                    f"({want[key]} vs {got[key]}); open it with the dataset it was reinforced from"
                )

    # ------------------------------------------------------------------ properties

    @property
    def num_samples(self) -> int:
        return int(self.settings["dataset"]["length"])

    @property
    def num_augs(self) -> int:
        return int(self.settings["num_augs"])

    @property
    def topk(self) -> int:
        return int(self.settings["topk"])

    @property
    def num_classes(self) -> int:
        return int(self.settings["dataset"]["num_classes"])

    @property
    def dense(self) -> bool:
        return "classes" not in self.record_dtype.names

    @property
    def seed(self) -> int:
        return int(self.settings["seed"])

    @property
    def policy_config(self) -> PolicyConfig:
        return PolicyConfig.from_dict(self.settings["policy"])

    def policy(self) -> Policy:
        """The policy that replays this store's records onto its dataset's images."""
        return Policy(self.policy_config, tuple(self.settings["dataset"]["image_shape"]))  # type: ignore[arg-type]

    def nbytes(self) -> int:
        """Bytes of all shards on disk (headers included; the manifest excluded)."""
        return sum(s.bytes for s in self.shards)

    def bytes_per_record(self) -> float:
        return self.nbytes() / (self.num_samples * self.num_augs)

    # ------------------------------------------------------------------ reading

    def _shard(self, s: int) -> np.ndarray:
        arr = self._maps.get(s)
        if arr is not None:
            return arr
        info = self.shards[s]
        path = self.root / info.file
        if self.verify_checksums and _sha256_file(path) != info.sha256:
            raise StoreCorruptError(
                f"{path} fails its checksum (bit flip or modified file); re-create the store or restore the shard"
            )
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise StoreCorruptError(f"cannot read shard {path}: {e}") from e
        if arr.dtype != self.record_dtype or arr.shape != (info.stop - info.start, self.num_augs):
            raise StoreCorruptError(f"{path} has dtype/shape {arr.dtype}/{arr.shape}, not what the manifest says")
        self._maps[s] = arr
        return arr

    def records(self, index: int) -> np.ndarray:
        """All ``num_augs`` records of sample ``index`` (a structured array, memory-mapped)."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"sample {index} out of range 0..{self.num_samples - 1}")
        s = index // self.settings["shard_size"]
        return self._shard(s)[index - self.shards[s].start]

    def record(self, index: int, aug: int) -> np.ndarray:
        """The record of augmentation ``aug`` of sample ``index``."""
        if not 0 <= aug < self.num_augs:
            raise IndexError(f"augmentation {aug} out of range 0..{self.num_augs - 1}")
        return self.records(index)[aug]

    def verify(self, dataset: ImageDataset | None = None) -> dict[str, Any]:
        """Check every shard's checksum, dtype and shape, and that the stored probabilities are finite,
        in [0, 1], sum to at most 1 (+ float16 slack) and name valid classes; optionally the dataset."""
        self._maps.clear()
        self.verify_checksums = True
        if dataset is not None:
            self.check_dataset(dataset)
        worst_sum = 0.0
        for s in range(len(self.shards)):
            arr = self._shard(s)
            probs = np.asarray(arr["probs"], dtype=np.float32)
            if not np.isfinite(probs).all() or probs.min() < 0 or probs.max() > 1.001:
                raise StoreCorruptError(f"{self.shards[s].file}: probabilities outside [0, 1] or not finite")
            sums = probs.sum(-1)
            worst_sum = max(worst_sum, float(sums.max()))
            if "classes" in arr.dtype.names and int(np.asarray(arr["classes"]).max()) >= self.num_classes:
                raise StoreCorruptError(f"{self.shards[s].file}: class id >= {self.num_classes}")
        if worst_sum > 1.0 + 2e-3 * max(self.topk, 1):
            raise StoreCorruptError(f"stored probabilities sum to {worst_sum:.4f} > 1")
        return {"shards": len(self.shards), "records": self.num_samples * self.num_augs,
                "bytes": self.nbytes(), "max_prob_sum": worst_sum, "dataset_checked": dataset is not None}

    def summary(self) -> dict[str, Any]:
        st = self.settings
        return {
            "path": str(self.root),
            "schema_version": self.manifest["schema_version"],
            "dataset": st["dataset"],
            "policy": st["policy"]["name"],
            "teacher": st["teacher"],
            "num_samples": self.num_samples,
            "num_augs": self.num_augs,
            "topk": self.topk,
            "dense": self.dense,
            "num_classes": self.num_classes,
            "seed": self.seed,
            "shards": len(self.shards),
            "record_bytes": self.record_dtype.itemsize,
            "bytes": self.nbytes(),
            "bytes_per_record": round(self.bytes_per_record(), 3),
        }

    # DataLoader workers get a copy without open memory maps; each reopens lazily.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_maps"] = {}
        return state

    def __repr__(self) -> str:
        return (f"Store({str(self.root)!r}, samples={self.num_samples}, augs={self.num_augs}, "
                f"k={self.topk}, policy={self.settings['policy']['name']!r})")

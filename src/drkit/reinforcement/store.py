"""The reinforced-dataset store: fixed-width records in shards, plus a JSON manifest.

Layout of a store directory::

    manifest.json        schema version, settings (dataset fingerprint, policy, teacher, N, k,
                         record dtype, ...) and their checksum, one entry per complete shard
                         (samples, bytes, sha256, and a checksum binding them)
    shard-00000.npy      records of samples [0, shard_size) × all augmentations
    keys-00000.npy       their sample keys, content hashes and labels (schema 3; drkit.data.samples)
    shard-00001.npy      ...
    .drkit-writer.lock   only while a run writes the store: its PID (see ``WriterLock``)

A shard is a ``.npy`` array of shape ``(samples, num_augs)`` with a structured dtype: the policy's
parameter fields, then ``probs`` (float16, top-k values) and ``classes`` (smallest unsigned int,
top-k class ids; absent when ``k >= num_classes``). ``.npy`` is read with ``allow_pickle=False``
and memory-mapped, so opening a stranger's store runs no code and one record is one read.

Sample keys (schema 3): each shard's ``keys-NNNNN.npy`` holds, per sample, its key
(:meth:`~drkit.data.ImageDataset.key`, UTF-8 in a fixed-width field), an 8-byte content hash of
its decoded pixels and its label, so the store can be matched to another copy of its dataset by
key (:mod:`drkit.reinforcement.matching`). Opening a store reads no key table; the key -> row
lookup (:meth:`Store.rows_for`) is built the first time it is asked for.

Shards are written to a temporary name and renamed when complete
(:class:`~drkit.reinforcement.writer.ShardWriter`); each is recorded in ``manifest.journal``, which is
folded into the manifest as it grows (:mod:`drkit.reinforcement.journal`), and the manifest is
marked ``complete`` at the end (a complete store has no journal). The manifest holds
nothing that varies between runs (no timestamps), so a store is byte-identical however it was made.

A store may come from a stranger: the manifest is validated against its schema
(:mod:`drkit.reinforcement.manifest`) before anything is allocated, shard files must have the store's own names
and lie inside it, and every failure is a :class:`~drkit.errors.StoreError`.
"""

from __future__ import annotations

import json
import logging
import os
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..augment.policies import Policy, PolicyConfig
from ..data import ImageDataset, dataset_fingerprint
from ..data.samples import is_key_dtype, key_table_problem
from ..errors import (
    ManifestError,
    StoreCorruptError,
    StoreError,
    StoreMismatchError,
)
from .manifest import (
    FORMAT,
    READABLE_VERSIONS,
    SCHEMA_VERSION,
    validate_manifest,
    verify_checksums,
)
from .matching import SampleMatch, match_samples
from .npyfile import NPY_HEADER_MAX, map_array, read_array, sha256_file
from .targets import class_id_dtype

__all__ = ["SCHEMA_VERSION", "MANIFEST", "Store", "ShardInfo", "record_dtype", "read_manifest", "shard_ranges"]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 256 << 20  # 2**20 shard entries of ~250 bytes
_VERIFY_BATCH = 1 << 18  # records (or keys) per value check in verify(): ~8-40 MB held at once
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
    except Exception as e:  # numpy's parser raises TypeError, ValueError, even SyntaxError
        raise StoreCorruptError(f"manifest record_dtype is invalid: {e}") from e


def shard_ranges(num_samples: int, shard_size: int) -> list[tuple[int, int, int]]:
    """``(shard index, first sample, end sample)`` for every shard."""
    return [(s, a, min(a + shard_size, num_samples)) for s, a in enumerate(range(0, num_samples, shard_size))]


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ValueError(f"key {dup!r} appears twice")
    return out


def _parse_manifest(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_MANIFEST_BYTES + 1)
        if len(data) > MAX_MANIFEST_BYTES:
            raise ValueError(f"larger than {MAX_MANIFEST_BYTES >> 20} MiB")
        return json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (OSError, ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise StoreCorruptError(f"{path} is not valid JSON ({e}); the store is damaged") from e


def read_manifest(root: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse ``manifest.json`` and validate it (format, schema version, schema, checksums, shard list,
    record dtype against the policy) before anything is allocated; no shard is touched.

    Returns the manifest as parsed (a dict). Raises :class:`StoreError` for what is not a store of a
    readable version, :class:`~drkit.errors.ManifestError` (naming the field) for a damaged one.
    """
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise StoreError(f"{root} is not a drkit store: {MANIFEST} is missing")
    manifest = _parse_manifest(path)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StoreError(f"{path} is not a drkit store manifest (format != {FORMAT!r})")
    version = manifest.get("schema_version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise StoreError(
            f"{root}: store schema version {version!r} is unknown to this drkit (reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}); upgrade drkit, or re-create the store with this version"
        )
    model = validate_manifest(manifest, str(path))
    st = manifest["settings"]
    dtype = dtype_from_json(st["record_dtype"])
    try:
        expected = record_dtype(Policy(model.settings.policy.config(), tuple(st["dataset"]["image_shape"])).param_dtype,
                                model.settings.dataset.num_classes, model.settings.topk)
    except ValueError as e:  # ConfigError: a policy that cannot apply to the dataset's images
        raise ManifestError(f"{path}: the manifest is damaged: settings.policy: {e}") from e
    if dtype != expected:
        raise ManifestError(
            f"{path}: the manifest is damaged: settings.record_dtype is not what policy "
            f"{model.settings.policy.name!r} with top-{model.settings.topk} of "
            f"{model.settings.dataset.num_classes} classes writes; re-create the store or restore its manifest.json"
        )
    for k, s in enumerate(model.shards):
        payload = (s.stop - s.start) * model.settings.num_augs * dtype.itemsize
        if not payload < s.bytes <= payload + NPY_HEADER_MAX:
            raise ManifestError(
                f"{path}: the manifest is damaged: shards[{k}].bytes: {s.bytes} bytes cannot hold "
                f"{s.stop - s.start} samples × {model.settings.num_augs} records of {dtype.itemsize} bytes"
            )
    for k, s in enumerate(model.shards):
        if s.keys_bytes is not None:
            n = s.stop - s.start
            if not n * 13 < s.keys_bytes <= n * 1036 + NPY_HEADER_MAX:  # keys of 1..1024 bytes + 12
                raise ManifestError(
                    f"{path}: the manifest is damaged: shards[{k}].keys_bytes: {s.keys_bytes} bytes cannot hold "
                    f"the key table of {n} samples")
    verify_checksums(model, manifest, str(path))
    return manifest


@dataclass(frozen=True)
class ShardInfo:
    index: int
    start: int
    stop: int
    file: str
    bytes: int
    sha256: str

    entry_sha256: str | None = None  # binds the entry to its samples (schema 2; see drkit.reinforcement.manifest)
    keys_file: str | None = None  # the shard's key table (schema 3)
    keys_bytes: int | None = None
    keys_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class Store:
    """A complete, read-only reinforced dataset.

    ``Store.open(path, dataset=...)`` validates the manifest (:func:`read_manifest`), checks that
    every shard (and key table) is present, inside the store and of the right size, and (with a
    dataset) the dataset fingerprint, or the match of another copy by sample key; each file's
    checksum is verified the first time it is read (``verify=True``). Records are memory-mapped;
    no key table is read until a key is looked up.

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
        self._key_maps: dict[int, np.ndarray] = {}
        self._verified: set[int] = set()  # shards (and key tables) verify() read and checked whole
        self._verified_keys: set[int] = set()
        self._lookup: tuple[np.ndarray, np.ndarray] | None = None  # sorted keys, their rows (rows_for)
        self._match: tuple[weakref.ref[Any], str, SampleMatch] | None = None  # the last match_dataset's
        self.run_stats: dict[str, Any] | None = None  # set by the engine that just wrote the store

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, dataset: ImageDataset | None = None,
             verify: bool = True, only_matching: bool = False) -> Store:
        """Open the store at ``path``; with ``dataset``, check that it can replay the store: the
        dataset it was made from (its fingerprint), or another copy whose samples all match by key
        and content (some only, with ``only_matching``; see :meth:`match_dataset`). Code that reads
        records by position must call :meth:`check_dataset` instead."""
        root = Path(path)
        manifest = read_manifest(root)  # validated: every count below is bounded
        if not manifest["complete"]:
            raise StoreError(
                f"{root} is incomplete ({len(manifest['shards'])} shards done): rerun the same "
                "`drkit reinforce` command to resume it"
            )
        store = cls(root, manifest, verify=verify)
        inside = root.resolve()
        for s in store.shards:
            files = [(s.file, s.bytes)] + ([(s.keys_file, s.keys_bytes)] if s.keys_file else [])
            for file, nbytes in files:
                what = "shard" if file == s.file else "key table"
                p = root / file
                if not p.is_file():
                    raise StoreCorruptError(f"{root}: {what} {file} is missing")
                if p.is_symlink() and not p.resolve().is_relative_to(inside):
                    raise StoreCorruptError(
                        f"{root}: {what} {file} is a link to {p.resolve()}, outside the store; copy the file into "
                        "the store")
                size = p.stat().st_size
                if size != nbytes:
                    raise StoreCorruptError(
                        f"{root}: {what} {file} is {size} bytes, the manifest says {nbytes} "
                        "(truncated or replaced); re-create the store or restore the file"
                    )
        if dataset is not None:
            store.match_dataset(dataset).require(only_matching=only_matching)
        return store

    def check_dataset(self, dataset: ImageDataset) -> None:
        """Raise :class:`StoreMismatchError` unless ``dataset`` is the one the store was made from,
        sample for sample in the same order (its fingerprint: the fast check). Another copy of the
        data, in another order or with samples missing, is matched by key by :meth:`match_dataset`."""
        problem = self.fingerprint_problem(dataset)
        if problem is not None:
            hint = ("; the store has sample keys: ReinforcedDataset and `drkit verify --data` match another "
                    "copy of the data by key" if self.has_sample_keys else "")
            raise StoreMismatchError(f"{problem}; open it with the dataset it was reinforced from{hint}")

    def fingerprint_problem(self, dataset: ImageDataset) -> str | None:
        """What differs between ``dataset``'s fingerprint and the store's (None: they are equal)."""
        want = self.settings["dataset"]
        if len(dataset) != want["length"]:
            return f"{self.root} was made from a dataset of {want['length']} samples; this one has {len(dataset)}"
        got = dataset_fingerprint(dataset)
        for key, what in (("num_classes", "number of classes"), ("image_shape", "image shape"),
                          ("labels_sha256", "labels"), ("content_sha256", "image content")):
            if got[key] != want[key]:
                return (f"{self.root} was made from another dataset: the {what} differ "
                        f"({want[key]} vs {got[key]})")
        return None

    def match_dataset(self, dataset: ImageDataset, *, by: str = "auto") -> SampleMatch:
        """Which store row each sample of ``dataset`` replays (:func:`drkit.reinforcement.matching.match_samples`:
        by position when the fingerprint matches, else by sample key and content hash). The result
        is kept for the last dataset matched, so a check and the dataset built after it share it."""
        if self._match is not None and self._match[0]() is dataset and self._match[1] == by:
            return self._match[2]
        result = match_samples(self, dataset, by=by)
        self._match = (weakref.ref(dataset), by, result)
        return result

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

    @property
    def has_sample_keys(self) -> bool:
        """Whether every shard has its key table (schema 3): then the store can be matched to
        another copy of its dataset by key. Older stores replay by position only."""
        return bool(self.shards) and all(s.keys_file for s in self.shards)

    @property
    def key_scheme(self) -> str | None:
        """What the sample keys are (``relative-path``, ``index``, ...), or None without keys."""
        keys = self.settings.get("sample_keys")
        return str(keys["scheme"]) if self.has_sample_keys and keys else None

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
        if self.verify_checksums and s not in self._verified and sha256_file(path) != info.sha256:
            raise StoreCorruptError(
                f"{path} fails its checksum (bit flip or modified file); re-create the store or restore the shard"
            )
        arr = map_array(path, self.record_dtype, (info.stop - info.start, self.num_augs))
        self._maps[s] = arr
        return arr

    def _key_table(self, s: int) -> np.ndarray:
        """Shard ``s``'s key table (read, checksum and header checked, the first time it is asked for)."""
        arr = self._key_maps.get(s)
        if arr is not None:
            return arr
        info = self.shards[s]
        path = self._key_path(s)
        if self.verify_checksums and s not in self._verified_keys and sha256_file(path) != info.keys_sha256:
            raise StoreCorruptError(f"{path} fails its checksum (bit flip or modified file); re-create the store "
                                    "or restore the file")
        arr = map_array(path, is_key_dtype, (info.stop - info.start,),
                        what=f"a key table of {info.stop - info.start} samples")
        self._key_maps[s] = arr
        return arr

    def _key_path(self, s: int) -> Path:
        if not self.shards[s].keys_file:
            raise StoreError(f"{self.root} has no sample keys (schema {self.manifest['schema_version']}): it "
                             "replays by position only, on the dataset it was made from")
        return self.root / self.shards[s].keys_file

    def _key_column(self, field: str) -> np.ndarray:
        return np.concatenate([np.asarray(self._key_table(s)[field]) for s in range(len(self.shards))])

    def sample_keys(self) -> np.ndarray:
        """Every sample's key in store row order, as UTF-8 bytes (``S<width>``; ``np.char.decode(keys,
        "utf-8")`` gives str). Reads every key table (a store without keys: :class:`StoreError`)."""
        return self._key_column("key")

    def sample_hashes(self) -> np.ndarray:
        """Every sample's content hash (``uint64``, :func:`drkit.data.samples.content_hash`), in row order."""
        return self._key_column("hash")

    def sample_labels(self) -> np.ndarray:
        """Every sample's label when the store was made (``int64``), in row order."""
        return self._key_column("label").astype(np.int64)

    def rows_for(self, keys: Sequence[str | bytes] | np.ndarray) -> np.ndarray:
        """The store row of each key (``int64``; -1 where the store has no such sample). The lookup
        (the keys sorted once) is built the first time; duplicate keys in the store are a
        :class:`StoreMismatchError` (such a store replays by position only)."""
        if self._lookup is None:
            all_keys = self.sample_keys()
            order = np.argsort(all_keys, kind="stable")
            ordered = all_keys[order]
            dup = np.flatnonzero(ordered[1:] == ordered[:-1])
            if len(dup):
                raise StoreMismatchError(
                    f"{self.root}: sample key {ordered[dup[0]].decode('utf-8', 'replace')!r} appears "
                    f"{int((ordered == ordered[dup[0]]).sum())} times (the dataset's keys were not unique): "
                    "the store cannot be matched by key; use it with the dataset it was made from")
            self._lookup = (ordered, order.astype(np.int64))
        ordered, rows = self._lookup
        out = np.full(len(keys), -1, dtype=np.int64)
        if not len(keys) or not len(ordered):
            return out
        if isinstance(keys, np.ndarray) and keys.dtype.kind == "S":  # e.g. sample_keys(): no re-encoding
            query = keys
            fits = np.char.str_len(query) <= ordered.dtype.itemsize
        else:
            raw = [k if isinstance(k, bytes) else k.encode("utf-8", "surrogatepass") for k in keys]
            lengths = np.fromiter(map(len, raw), dtype=np.int64, count=len(raw))
            query = np.array(raw, dtype=f"S{max(int(lengths.max()), 1)}")
            # a key longer than the store's longest, or one numpy shortened (trailing NULs), is not in it
            fits = (lengths <= ordered.dtype.itemsize) & (np.char.str_len(query) == lengths)
        query = query.astype(ordered.dtype)  # truncates only keys that do not fit
        by_value = np.argsort(query, kind="stable")  # sorted needles: searchsorted runs ~2x faster
        pos = np.empty(len(query), dtype=np.int64)
        pos[by_value] = np.searchsorted(ordered, query[by_value])
        pos = np.minimum(pos, len(ordered) - 1)
        hit = fits & (ordered[pos] == query)
        out[hit] = rows[pos[hit]]
        return out

    def field(self, name: str) -> np.ndarray:
        """One record field of every sample and augmentation, ``(num_samples, num_augs, ...)``, read
        shard by shard (e.g. ``"partner"``: which store row each mixing record mixes with)."""
        if name not in self.record_dtype.names:
            raise KeyError(f"records have no field {name!r} (they have {', '.join(self.record_dtype.names)})")
        return np.concatenate([np.asarray(self._shard(s)[name]) for s in range(len(self.shards))])

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
        if not 0 <= index < self.num_samples:
            raise IndexError(f"sample {index} out of range 0..{self.num_samples - 1}")
        s = index // self.settings["shard_size"]
        return self._shard(s)[index - self.shards[s].start, aug]  # one index, not two

    def verify(self, dataset: ImageDataset | None = None, *, only_matching: bool = False) -> dict[str, Any]:
        """Check every shard's (and key table's) checksum, dtype and shape, and that the stored
        probabilities are finite, in [0, 1], sum to at most 1 (+ float16 slack) and name valid
        classes; optionally the dataset: its fingerprint, else (a store with sample keys) which of
        its samples match the store's by key and content (``report["match"]``). Samples missing on
        either side or changed are a :class:`~drkit.reinforcement.matching.SampleMismatchError`
        unless ``only_matching``."""
        self._maps.clear()
        self._key_maps.clear()
        self._verified.clear()
        self._verified_keys.clear()
        self._lookup = None
        self._match = None
        self.verify_checksums = True
        # every file is read once (read_array: hashed from the buffer its array is viewed on) and
        # then marked verified, so the reads after verify() map it without hashing it again. The
        # value checks run over batches of shards: each reduction costs ~16 us whatever its size,
        # ten a shard, which was most of verify's time with 1 augmentation a sample (30 KB shards)
        tables: list[tuple[int, np.ndarray]] = []
        held = 0
        for s in range(len(self.shards)):
            if self.shards[s].keys_file:
                tables.append((s, self._read_keys(s)))
                held += len(tables[-1][1])
                if dataset is not None:  # matching reads every key table next: keep them, verified
                    self._key_maps[s] = tables[-1][1]
                if held >= _VERIFY_BATCH:
                    self._check_keys(tables)
                    tables, held = [], 0
        self._check_keys(tables)
        match = None
        if dataset is not None:
            match = self.match_dataset(dataset)
            match.require(only_matching=only_matching)
        worst_sum, policy = 0.0, self.policy()  # built once: ~40 us a shard, felt at 1 augmentation a sample
        batch: list[tuple[int, np.ndarray]] = []
        held = 0
        for s in range(len(self.shards)):
            info = self.shards[s]
            arr = read_array(self.root / info.file, self.record_dtype, (info.stop - info.start, self.num_augs),
                             info.sha256)
            self._check_params(s, arr, dataset, match, policy)
            batch.append((s, arr))
            held += arr.size
            if s == len(self.shards) - 1 or held >= _VERIFY_BATCH:
                worst_sum = max(worst_sum, self._check_records(batch))
                batch, held = [], 0
        if worst_sum > 1.0 + 2e-3 * max(self.topk, 1):
            raise StoreCorruptError(f"stored probabilities sum to {worst_sum:.4f} > 1")
        out = {"shards": len(self.shards), "records": self.num_samples * self.num_augs,
               "bytes": self.nbytes(), "max_prob_sum": worst_sum, "dataset_checked": dataset is not None,
               "sample_keys": self.has_sample_keys}
        if match is not None:
            out["match"] = match.report()
        return out

    def _read_keys(self, s: int) -> np.ndarray:
        """Shard ``s``'s key table, read once: its checksum and layout checked."""
        info = self.shards[s]
        return read_array(self._key_path(s), is_key_dtype, (info.stop - info.start,), info.keys_sha256,
                          what=f"a key table of {info.stop - info.start} samples")

    def _check_keys(self, tables: list[tuple[int, np.ndarray]]) -> None:
        """The keys of the shards' key tables are UTF-8 text without NUL (what
        :func:`drkit.data.samples.encode_key` wrote) and their labels are classes of the store:
        checked over all tables of one key width at once, shard by shard only to name the file."""
        by_width: dict[np.dtype, list[tuple[int, np.ndarray]]] = {}
        for s, table in tables:
            by_width.setdefault(table.dtype, []).append((s, table))
        for group in by_width.values():
            if self._keys_problem(np.concatenate([t for _, t in group])) is not None:
                for s, table in group:
                    problem = self._keys_problem(table)
                    if problem is not None:
                        raise StoreCorruptError(f"{self._key_path(s)}: {problem}; re-create the store or restore "
                                                "the file")
        self._verified_keys.update(s for s, _ in tables)

    def _keys_problem(self, table: np.ndarray) -> str | None:
        problem = key_table_problem(table)
        if problem is None and int(table["label"].max(initial=0)) >= self.num_classes:
            problem = f"a label >= {self.num_classes}"
        return problem

    def _check_records(self, batch: list[tuple[int, np.ndarray]]) -> float:
        """The stored probabilities of the shards' records are finite, in [0, 1] and name classes of
        the store: checked over the whole batch at once (each reduction costs ~16 us whatever its
        size), shard by shard only to name the file. Marks the shards verified; returns the largest
        sum of one record's probabilities."""
        def fields(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
            # the two fields checked, copied out of the records (not whole records: a third of the bytes)
            probs = np.concatenate([a["probs"].reshape(a.size, -1) for a in arrays]).astype(np.float32)
            has = "classes" in arrays[0].dtype.names
            return probs, np.concatenate([a["classes"].reshape(-1) for a in arrays]) if has else None

        p32, classes = fields([a for _, a in batch])  # float32: numpy's float16 reductions are ~2x slower
        if self._records_problem(p32, classes) is not None:
            for s, arr in batch:
                problem = self._records_problem(*fields([arr]))
                if problem is not None:
                    raise StoreCorruptError(f"{self.shards[s].file}: {problem}")
        self._verified.update(s for s, _ in batch)
        return float(p32.sum(-1).max(initial=0.0))

    def _records_problem(self, p32: np.ndarray, classes: np.ndarray | None) -> str | None:
        """What is wrong with stored probabilities (as float32) or class ids, if anything."""
        lo, hi = float(p32.min(initial=0.0)), float(p32.max(initial=0.0))
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0 or hi > 1.001:
            return "probabilities outside [0, 1] or not finite"
        if classes is not None and int(classes.max(initial=0)) >= self.num_classes:
            return f"class id >= {self.num_classes}"
        return None

    def _check_params(self, s: int, arr: np.ndarray, dataset: ImageDataset | None,
                      match: SampleMatch | None = None, policy: Policy | None = None) -> None:
        """The records say which samples they are: their parameters are the policy's pure function
        of (seed, sample, augmentation). Checked for the first and last sample of shard ``s`` (all
        fields with the dataset, else the mixing fields, which do not depend on each image's size),
        so a shard holding other samples, or settings edited in a store without their checksum,
        fail."""
        policy, info = policy or self.policy(), self.shards[s]
        mixing = policy.param_dtype.names[len(policy._base_names):]
        for i in sorted({info.start, info.stop - 1}):
            # the image of store row i: by position, or the sample of the other copy that matched it
            b = i if match is None else match.base_of_row(i)
            hw = tuple(dataset.image(b).shape[-2:]) if dataset is not None and b >= 0 else None
            names = policy.param_dtype.names if hw is not None else mixing
            if not names:
                continue
            for j in range(min(self.num_augs, 64)):
                want = policy.sample(self.seed, i, j, num_samples=self.num_samples, num_augs=self.num_augs,
                                     image_hw=hw)  # type: ignore[arg-type]
                got = arr[i - info.start, j]
                bad = next((n for n in names if not np.array_equal(got[n], want[n])), None)
                if bad is not None:
                    raise StoreCorruptError(
                        f"{self.root / info.file}: the record of sample {i}, augmentation {j} is not the one the "
                        f"settings give ({bad!r} differs): the shard holds other samples or the settings were "
                        "edited; re-create the store or restore the file and manifest"
                    )

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
            "sample_keys": ({"scheme": self.key_scheme, "hash": self.settings["sample_keys"]["hash"]}
                            if self.has_sample_keys else None),
        }

    # DataLoader workers get a copy without open memory maps; each reopens lazily.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_maps"], state["_key_maps"], state["_lookup"], state["_match"] = {}, {}, None, None
        return state

    def __repr__(self) -> str:
        return (f"Store({str(self.root)!r}, samples={self.num_samples}, augs={self.num_augs}, "
                f"k={self.topk}, policy={self.settings['policy']['name']!r})")

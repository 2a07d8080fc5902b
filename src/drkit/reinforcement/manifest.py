"""The schema of a store's ``manifest.json``, checked before a store allocates anything.

A store may come from a stranger (DESIGN.md: "the store is data, not code"), so every field is
validated against a typed schema (pydantic v2) before it is used: strict types (``"1"`` is not 1,
``true`` is not 1, no inf/NaN), bounds that keep every later allocation small (at most 2**32 - 1
samples — the mixing partner is stored as uint32 — and 2**20 shards), shard file names of the
store's own pattern (so nothing outside the store is ever read). Then the cross-field facts the
types cannot say: the shard list is the one the settings imply, the settings match their checksum,
and each shard entry is bound to the samples it holds. Every violation is a :class:`ManifestError`
naming the field.

Schema versions:

- 1 (stores of drkit 0.1.0): as 2, with ``settings_sha256`` and the shards' ``entry_sha256``
  optional (checked when present). Such stores still open, with every other check.
- 2: ``settings_sha256`` is the sha256 of the canonical JSON of ``settings`` (an edited or damaged
  setting, e.g. a bit flip in ``policy.ra_num_bins``, fails it); each shard's ``entry_sha256`` is
  the sha256 of its entry (index, sample range, file, bytes, file sha256) and the settings
  checksum, so entries swapped between shards, or copied from another store, fail.
- 3: every shard entry also names its key table (``keys_file`` ``keys-NNNNN.npy``, ``keys_bytes``,
  ``keys_sha256``; one key, content hash and label per sample, :mod:`drkit.data.samples`), bound
  into ``entry_sha256``; ``settings.sample_keys`` says what the keys are (``scheme``) and how the
  content is hashed. Stores of schemas 1 and 2 have no sample keys (and must not name key tables):
  they replay by position only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationError,
    model_validator,
)

from ..augment.policies import POLICIES, PolicyConfig
from ..errors import ConfigError, ManifestError

__all__ = ["SCHEMA_VERSION", "READABLE_VERSIONS", "KEYED_VERSION", "FORMAT", "MAX_SAMPLES", "MAX_SHARDS",
           "ManifestModel", "shard_file_name", "keys_file_name", "canonical_json", "settings_sha256",
           "entry_sha256", "sealed_settings_sha256", "seal", "validate_manifest", "verify_checksums"]

SCHEMA_VERSION = 3  # what this drkit writes
READABLE_VERSIONS = (1, 2, 3)  # what it opens
KEYED_VERSION = 3  # the first schema with sample keys
FORMAT = "drkit-store"
MAX_SAMPLES = 2**32 - 1  # mixing records hold the partner's index as uint32
MAX_SHARDS = 2**20
MAX_CLASSES = 2**24
MAX_SIDE = 65535
SHARD_PATTERN = r"^shard-[0-9]{5,7}\.npy$"
KEYS_PATTERN = r"^keys-[0-9]{5,7}\.npy$"
_KEY_FIELDS = ("keys_file", "keys_bytes", "keys_sha256")


def shard_file_name(index: int) -> str:
    """The only name shard ``index`` may have, inside the store directory."""
    return f"shard-{index:05d}.npy"


def keys_file_name(index: int) -> str:
    """The only name the key table of shard ``index`` may have, inside the store directory."""
    return f"keys-{index:05d}.npy"


def _int(lo: int, hi: int) -> Any:
    return Annotated[int, Field(strict=True, ge=lo, le=hi)]


_SHA256 = Annotated[str, StringConstraints(strict=True, pattern=r"^[0-9a-f]{64}$")]
_Float = Annotated[float, Field(strict=True)]
_Pair = Annotated[list[_Float], Field(min_length=2, max_length=2)]
_Text = Annotated[str, StringConstraints(strict=True, max_length=4096)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class DatasetSettings(_Model):
    name: _Text
    length: _int(1, MAX_SAMPLES)  # type: ignore[valid-type]
    num_classes: _int(1, MAX_CLASSES)  # type: ignore[valid-type]
    image_shape: Annotated[list[_int(1, MAX_SIDE)], Field(min_length=3, max_length=3)]  # type: ignore[valid-type]
    labels_sha256: _SHA256
    content_sha256: _SHA256
    content_items: _int(0, MAX_SAMPLES)  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _consistent(self) -> DatasetSettings:
        if self.image_shape[0] > 4:
            raise ValueError(f"image_shape {self.image_shape} has more than 4 channels")
        if self.content_items > self.length:
            raise ValueError(f"content_items {self.content_items} > length {self.length}")
        return self


class PolicySettings(_Model):
    """Every field of :class:`~drkit.augment.policies.PolicyConfig`, all required: a missing one would be
    replayed with its default, silently."""

    name: Literal[POLICIES]  # type: ignore[valid-type]
    size: Annotated[list[_int(1, MAX_SIDE)], Field(min_length=2, max_length=2)] | None  # type: ignore[valid-type]
    scale: _Pair | None
    ratio: _Pair
    flip_p: _Float
    ra_num_ops: _int(1, 8)  # type: ignore[valid-type]
    ra_magnitude: _int(0, 127)  # type: ignore[valid-type]
    ra_magnitude_std: _Float
    ra_num_bins: _int(2, 128)  # type: ignore[valid-type]
    erase_p: _Float
    erase_scale: _Pair
    erase_ratio: _Pair
    mix_alpha: _Float
    cutmix_p: _Float

    @model_validator(mode="after")
    def _valid_policy(self) -> PolicySettings:
        try:
            self.config()
        except ConfigError as e:  # a ValueError: pydantic reports it at this model's location
            raise ValueError(str(e)) from e
        return self

    def config(self) -> PolicyConfig:
        return PolicyConfig.from_dict(self.model_dump())


class TeacherSettings(_Model):
    """A description only (never loaded): what `info`, `eval` and `runs` read must have its type."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, frozen=True)
    members: Annotated[list[dict[str, JsonValue]], Field(min_length=1, max_length=1024)]
    temperature: Annotated[float, Field(strict=True, gt=0)]


_RecordField = tuple[
    Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64)],
    Annotated[str, StringConstraints(strict=True, max_length=16)],  # numpy's dtype.str, parsed by the store
    Annotated[list[_int(1, MAX_CLASSES)], Field(max_length=4)],  # type: ignore[valid-type]
]


class SampleKeySettings(_Model):
    """What a store's sample keys are (schema 3): the dataset's key scheme (``relative-path``,
    ``index``, ``__key__``, ...) and the content hash's definition."""

    scheme: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=256)]
    hash: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=256)]


class Settings(_Model):
    # other keys are allowed (covered by the checksum) so that a new, optional setting does not
    # need a schema version of its own; the ones this drkit reads are typed here
    model_config = ConfigDict(extra="allow", allow_inf_nan=False, frozen=True)
    dataset: DatasetSettings
    policy: PolicySettings
    teacher: TeacherSettings
    num_augs: _int(1, 65535)  # type: ignore[valid-type]
    topk: _int(1, MAX_CLASSES)  # type: ignore[valid-type]
    seed: _int(0, 2**64 - 1)  # type: ignore[valid-type]
    shard_size: _int(1, MAX_SAMPLES)  # type: ignore[valid-type]
    teacher_batch: _int(1, 2**31 - 1)  # type: ignore[valid-type]
    record_dtype: Annotated[list[_RecordField], Field(min_length=1, max_length=64)]
    sample_keys: SampleKeySettings | None = None  # required from schema 3

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.topk > self.dataset.num_classes:
            raise ValueError(f"topk {self.topk} > dataset.num_classes {self.dataset.num_classes}")
        return self


class ShardEntry(_Model):
    index: _int(0, MAX_SHARDS - 1)  # type: ignore[valid-type]
    start: _int(0, MAX_SAMPLES)  # type: ignore[valid-type]
    stop: _int(1, MAX_SAMPLES)  # type: ignore[valid-type]
    file: Annotated[str, StringConstraints(strict=True, pattern=SHARD_PATTERN)]
    bytes: _int(1, 2**50)  # type: ignore[valid-type]
    sha256: _SHA256
    entry_sha256: _SHA256 | None = None
    # the shard's key table (schema 3): one key, content hash and label per sample
    keys_file: Annotated[str, StringConstraints(strict=True, pattern=KEYS_PATTERN)] | None = None
    keys_bytes: _int(1, 2**50) | None = None  # type: ignore[valid-type]
    keys_sha256: _SHA256 | None = None


class ManifestModel(_Model):
    format: Literal["drkit-store"]
    schema_version: Literal[READABLE_VERSIONS]  # type: ignore[valid-type]
    drkit_version: Annotated[str, StringConstraints(strict=True, max_length=64)]
    complete: Annotated[bool, Field(strict=True)]
    settings: Settings
    settings_sha256: _SHA256 | None = None
    shards: Annotated[list[ShardEntry], Field(max_length=MAX_SHARDS)]

    @property
    def num_shards(self) -> int:
        """Shards of the complete store: ``ceil(length / shard_size)``, by arithmetic."""
        st = self.settings
        return -(-st.dataset.length // st.shard_size)


# --------------------------------------------------------------------------- checksums


def canonical_json(value: Any) -> bytes:
    """One byte string per JSON value: sorted keys, no spaces, ASCII (what the checksums hash)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def settings_sha256(settings: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(settings)).hexdigest()


def sealed_settings_sha256(settings: Mapping[str, Any]) -> str:
    """The ``settings_sha256`` a manifest is sealed with: of the settings as they read back from JSON."""
    return settings_sha256(json.loads(canonical_json(settings)))


def entry_sha256(entry: Mapping[str, Any], settings_checksum: str) -> str:
    """Binds a shard's file checksum to the samples it holds and to the store's settings."""
    keys = ("index", "start", "stop", "file", "bytes", "sha256") + tuple(k for k in _KEY_FIELDS if k in entry)
    return hashlib.sha256(canonical_json({"settings_sha256": settings_checksum,
                                          **{k: entry[k] for k in keys}})).hexdigest()


def seal(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """``manifest`` with its checksums filled in (``settings_sha256``, each ``entry_sha256``)."""
    out = dict(manifest)
    digest = sealed_settings_sha256(out["settings"])
    out["settings_sha256"] = digest
    out["shards"] = [{**s, "entry_sha256": entry_sha256(s, digest)} for s in out["shards"]]
    return out


# --------------------------------------------------------------------------- validation


def _describe(e: ValidationError, limit: int = 3) -> str:
    parts = []
    for err in e.errors(include_url=False, include_input=False)[:limit]:
        where = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in err["loc"]).replace(".[", "[")
        parts.append(f"{where or '(top level)'}: {err['msg']}")
    more = e.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _damaged(where: str, field: str, what: str) -> ManifestError:
    return ManifestError(f"{where}: the manifest is damaged: {field}: {what}; re-create the store "
                         "or restore its manifest.json")


def validate_manifest(raw: Any, where: str) -> ManifestModel:
    """Check a parsed manifest against the schema and the shard list its settings imply; ``where``
    names it in errors (:func:`verify_checksums` checks its checksums).

    Only arithmetic and hashing of the manifest itself: no shard is touched, nothing is allocated
    in proportion to what the manifest claims.
    """
    try:
        m = ManifestModel.model_validate(raw)
    except ValidationError as e:
        raise ManifestError(f"{where}: the manifest is damaged or not drkit's: {_describe(e)}; "
                            "re-create the store or restore its manifest.json") from None
    if m.schema_version >= 2:
        if m.settings_sha256 is None:
            raise _damaged(where, "settings_sha256", "missing (required from schema version 2)")
        missing = [i for i, s in enumerate(m.shards) if s.entry_sha256 is None]
        if missing:
            raise _damaged(where, f"shards[{missing[0]}].entry_sha256", "missing (required from schema version 2)")
    keyed = m.schema_version >= KEYED_VERSION
    if keyed and m.settings.sample_keys is None:
        raise _damaged(where, "settings.sample_keys", f"missing (required from schema version {KEYED_VERSION})")
    for k, s in enumerate(m.shards):
        present = [f for f in _KEY_FIELDS if getattr(s, f) is not None]
        if keyed and len(present) != len(_KEY_FIELDS):
            field = next(f for f in _KEY_FIELDS if getattr(s, f) is None)
            raise _damaged(where, f"shards[{k}].{field}", f"missing (required from schema version {KEYED_VERSION})")
        if not keyed and present:
            raise _damaged(where, f"shards[{k}].{present[0]}",
                           f"sample keys need schema version {KEYED_VERSION}, the manifest says {m.schema_version}")
    st, n = m.settings, m.num_shards
    if len(m.shards) > n or (m.complete and len(m.shards) != n):
        raise _damaged(where, "shards", f"the list does not cover the dataset: {len(m.shards)} entries, but "
                             f"{st.dataset.length} samples in shards of {st.shard_size} make "
                             f"{n}{'' if m.complete else ' at most'}")
    previous = -1
    for k, s in enumerate(m.shards):
        start = s.index * st.shard_size
        if s.index <= previous:
            raise _damaged(where, f"shards[{k}].index", f"{s.index} after {previous} (entries must be sorted, each once)")
        if s.index >= n:
            raise _damaged(where, f"shards[{k}].index", f"{s.index}, but the store has {n} shards")
        if (s.start, s.stop) != (start, min(start + st.shard_size, st.dataset.length)):
            raise _damaged(where, f"shards[{k}]", f"samples {s.start}..{s.stop} are not those of shard {s.index}")
        if s.file != shard_file_name(s.index):
            raise _damaged(where, f"shards[{k}].file", f"{s.file!r} is not shard {s.index}'s ({shard_file_name(s.index)!r})")
        if s.keys_file is not None and s.keys_file != keys_file_name(s.index):
            raise _damaged(where, f"shards[{k}].keys_file",
                           f"{s.keys_file!r} is not shard {s.index}'s key table ({keys_file_name(s.index)!r})")
        previous = s.index
    return m


def verify_checksums(m: ManifestModel, raw: Mapping[str, Any], where: str) -> None:
    """The settings against ``settings_sha256``, each shard entry against its ``entry_sha256``
    (both required from schema 2, checked when present in schema 1)."""
    digest = settings_sha256(raw["settings"])
    if m.settings_sha256 is not None and m.settings_sha256 != digest:
        raise _damaged(where, "settings", "they fail their checksum settings_sha256 (edited or damaged)")
    for k, s in enumerate(m.shards):
        if s.entry_sha256 is not None and s.entry_sha256 != entry_sha256(raw["shards"][k], digest):
            raise _damaged(where, f"shards[{k}]",
                           "the entry fails its checksum entry_sha256 (edited, or swapped with another)")

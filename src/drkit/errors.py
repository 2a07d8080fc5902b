"""drkit's error types: each message says what is wrong and what to do about it."""

from __future__ import annotations

__all__ = [
    "DrkitError",
    "ConfigError",
    "DataError",
    "TeacherError",
    "StoreError",
    "StoreMismatchError",
    "StoreCorruptError",
    "ManifestError",
    "StoreLockedError",
]


class DrkitError(Exception):
    """Base class of every error drkit raises on purpose."""


class ConfigError(DrkitError, ValueError):
    """An argument or configuration value is invalid."""


class DataError(DrkitError):
    """A dataset cannot be found, read or decoded, or is empty."""


class TeacherError(DrkitError):
    """A teacher cannot be loaded, or its outputs are unusable (wrong width, NaN/inf)."""


class StoreError(DrkitError):
    """A reinforced-dataset store cannot be used."""


class StoreMismatchError(StoreError):
    """The store was made from other settings or from another dataset."""


class StoreCorruptError(StoreError):
    """A shard or the manifest is missing, truncated, or fails its checksum."""


class ManifestError(StoreCorruptError):
    """``manifest.json`` breaks the store schema or fails its settings checksum (names the field)."""


class StoreLockedError(StoreError):
    """Another process is writing the store (its writer lock is held)."""

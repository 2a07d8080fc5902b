"""The version of drkit: one place, read by the package, the store manifest and the CLI."""

__version__ = "0.2.0"

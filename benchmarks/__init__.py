"""drkit's benchmarks: scripts that measure the library, each run from the repository root as
``python -m benchmarks.NAME`` (benchmarks/README.md lists them)."""

"""Memory of forked DataLoader workers: keep the Python objects inherited from the parent shared.

A DataLoader worker started by ``fork`` shares every page of its parent until one side writes to
it. Python's cyclic garbage collector writes to the header of every container object it examines,
so the first full collection in a worker (after enough allocations: a long epoch) touches the
hundreds of thousands of objects the parent had made (torch, timm, the user's own) and each page
holding one becomes the worker's private copy. ``benchmarks/scale.py`` measured it: each worker's
USS grew by ~120 MiB over a 1.28 M-sample epoch with ``RssAnon`` flat (no allocation), in
anonymous and heap pages; with the inherited objects frozen (``gc.freeze()`` in the worker), by
~1 MiB. Python's documentation recommends ``gc.freeze()`` for processes that fork without exec.

:class:`InheritedObjects` does it once per process, the first time a dataset item is made in a
process other than the one that built the dataset: nothing changes in the parent (its collector
works as before), a ``spawn``-started worker is unaffected (it inherits nothing, freezing its few
objects is harmless), and the child's own garbage is still collected.
"""

from __future__ import annotations

import gc
import os

__all__ = ["InheritedObjects"]


class InheritedObjects:
    """Call :meth:`check` on every item: in a forked child, the first call freezes the objects the
    child inherited (``gc.freeze()``), so its garbage collector never touches (and copies) them."""

    __slots__ = ("_pid",)

    def __init__(self) -> None:
        self._pid = os.getpid()

    def check(self) -> None:
        pid = os.getpid()
        if pid != self._pid:  # ~0.1 us a call: one getpid and a compare
            self._pid = pid
            gc.freeze()

    def __getstate__(self) -> int:  # pickled into a spawn-started worker: it inherits nothing to freeze
        return -1

    def __setstate__(self, state: int) -> None:
        self._pid = os.getpid()

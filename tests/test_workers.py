"""drkit.data.workers: a forked DataLoader worker freezes the objects it inherited (its garbage
collector then never copies their pages); the parent and spawn-started workers are left alone."""

from __future__ import annotations

import gc
import pickle

import pytest
import torch
from conftest import tiny_teacher
from torch.utils.data import DataLoader

import drkit
from drkit.data.workers import InheritedObjects

pytestmark = pytest.mark.usefixtures("one_thread")


class _Probe(drkit.ReinforcedDataset):
    """Each item also says how many objects its process's collector holds frozen."""

    def __getitem__(self, index):
        view, target, label = super().__getitem__(index)
        return view, target, label, gc.get_freeze_count()


def test_forked_workers_freeze_what_they_inherited_and_the_parent_does_not(digits60, make_store):
    store = make_store(digits60, tiny_teacher(1, 10))
    before = gc.get_freeze_count()
    ds = _Probe(digits60, store)
    *_, frozen = ds[0]
    assert frozen == before  # in the process that built it: nothing frozen
    loader = DataLoader(ds, batch_size=20, num_workers=2, multiprocessing_context="fork")
    counts = torch.cat([b[-1] for b in loader])
    assert (counts > before + 1000).all()  # torch, numpy, drkit, pytest...: all inherited, all frozen
    assert gc.get_freeze_count() == before


def test_inherited_objects_pickled_into_a_spawned_worker_freeze_nothing():
    marker = pickle.loads(pickle.dumps(InheritedObjects()))
    before = gc.get_freeze_count()
    marker.check()
    assert gc.get_freeze_count() == before

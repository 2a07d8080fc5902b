"""drkit 0.1's flat module paths keep working for one release, with a DeprecationWarning that names
the new home; the public API of ``drkit`` is unchanged."""

from __future__ import annotations

import importlib

import pytest

import drkit
from drkit._compat import MOVED_MODULES, MOVED_NAMES


@pytest.mark.parametrize("old, new", sorted(MOVED_MODULES.items()))
def test_every_old_module_path_imports_and_warns(old, new):
    mod = importlib.import_module(old)
    target = importlib.import_module(new)
    public = [n for n in getattr(target, "__all__", []) if not n.startswith("_")] or \
        [n for n in vars(target) if not n.startswith("_")][:1]
    name = public[0]
    with pytest.warns(DeprecationWarning, match=rf"{old}\.{name} moved to"):
        got = getattr(mod, name)
    assert got is getattr(importlib.import_module(MOVED_NAMES.get((old, name), new)), name)


def test_names_that_left_their_module_are_found_where_they_went():
    from drkit.inference import best_device, predict_probs

    with pytest.warns(DeprecationWarning, match="drkit.inference.best_device"):
        from drkit.teachers import best_device as old_best
    with pytest.warns(DeprecationWarning, match="drkit.inference.predict_probs"):
        from drkit.train import predict_probs as old_predict
    with pytest.warns(DeprecationWarning, match="drkit.data.stratified_subset"):
        from drkit.runs import stratified_subset  # noqa: F401
    assert old_best is best_device and old_predict is predict_probs
    with pytest.warns(DeprecationWarning):
        assert drkit.store.Store is drkit.Store  # attribute access on the package, as 0.1 allowed


def test_public_api_is_unchanged_and_an_unknown_name_is_an_attribute_error():
    for name in ("reinforce", "train", "train_run", "evaluate_run", "evaluate_model", "ReinforcedDataset", "Store",
                 "ReinforceConfig", "TrainConfig", "FreshAugmented", "TeacherEnsemble", "load_teacher", "compare",
                 "audit_store", "soft_target_cross_entropy", "RayOptions", "CertifyConfig"):
        assert name in drkit.__all__ and getattr(drkit, name) is not None
    assert callable(drkit.reinforce) and callable(drkit.train)  # the functions, not the stage packages
    from drkit.reinforcement import ReinforceConfig
    from drkit.training import TrainConfig

    assert ReinforceConfig is drkit.ReinforceConfig and TrainConfig is drkit.TrainConfig
    with pytest.raises(AttributeError):
        drkit.no_such_module  # noqa: B018
    with pytest.raises(ImportError, match="no_such_name"):
        from drkit.training import no_such_name  # noqa: F401


def test_stage_packages_import_by_attribute_path():
    """The stages are not hidden behind the functions drkit.reinforce / drkit.train."""
    import drkit.reinforcement.plan as plan
    import drkit.training.runs as runs

    assert runs.train_run is drkit.train_run and plan.plan_run is drkit.reinforcement.plan.plan_run
    with pytest.warns(DeprecationWarning, match="drkit.train.TrainConfig moved to drkit.training"):
        from drkit.train import TrainConfig
    assert TrainConfig is drkit.TrainConfig

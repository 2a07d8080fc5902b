"""Stage 2, reinforce: run the teacher ensemble once over many stored augmentations of every sample.

Modules, in the order data flows (``drkit reinforce``; Faghri et al., ICCV 2023, §3):

- :mod:`~drkit.reinforce.teachers`: teacher specs, :class:`TeacherEnsemble`, ``ensemble:DIR``;
- :mod:`~drkit.reinforce.config`: :class:`ReinforceConfig`, the run's settings;
- :mod:`~drkit.reinforce.plan`: checks ``--out``, loads data and teachers, the store's settings;
- :mod:`~drkit.reinforce.compute`: augmented views in DataLoader workers, the teacher on fixed chunks;
- :mod:`~drkit.reinforce.targets`: top-k sparsification (and densifying back);
- :mod:`~drkit.reinforce.manifest` and :mod:`~drkit.reinforce.store`: the store on disk (typed
  shards + a validated JSON manifest; never code);
- :mod:`~drkit.reinforce.session`: the writing side shared by both engines (lock, resume, atomic shards);
- :mod:`~drkit.reinforce.engine` (:func:`reinforce`, the local engine) and
  :mod:`~drkit.reinforce.ray_engine` (the same store from Ray workers).

``drkit.reinforce`` is also the public function :func:`drkit.reinforce` on the top-level package:
``from drkit.reinforce import ReinforceConfig`` reaches this package, ``drkit.reinforce(...)`` runs.
"""

from typing import Any

from .._compat import moved_name
from .compute import AugmentedRecords, ShardComputer
from .config import ReinforceConfig
from .engine import reinforce
from .plan import RunPlan, check_out_dir, open_complete, plan_run
from .ray_engine import RayOptions
from .session import StoreSession
from .store import Store
from .teachers import TeacherEnsemble, load_teacher, prepare_teacher

__all__ = ["ReinforceConfig", "reinforce", "RayOptions", "RunPlan", "plan_run", "check_out_dir", "open_complete",
           "AugmentedRecords", "ShardComputer", "StoreSession", "Store", "TeacherEnsemble", "load_teacher",
           "prepare_teacher"]


def __getattr__(name: str) -> Any:  # names of drkit 0.1's reinforce module that live elsewhere now
    return moved_name(__name__, name)

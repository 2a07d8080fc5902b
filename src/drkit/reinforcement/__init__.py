"""Stage 2, reinforce: run the teacher ensemble once over many stored augmentations of every sample.

Modules, in the order data flows (``drkit reinforce``; Faghri et al., ICCV 2023, §3):

- :mod:`~drkit.reinforcement.teachers`: teacher specs, :class:`TeacherEnsemble`, ``ensemble:DIR``;
- :mod:`~drkit.reinforcement.config`: :class:`ReinforceConfig`, the run's settings;
- :mod:`~drkit.reinforcement.plan`: checks ``--out``, loads data and teachers, the store's settings;
- :mod:`~drkit.reinforcement.compute`: augmented views in DataLoader workers, the teacher on fixed chunks;
- :mod:`~drkit.reinforcement.targets`: top-k sparsification (and densifying back);
- :mod:`~drkit.reinforcement.manifest` and :mod:`~drkit.reinforcement.store`: the store on disk (typed
  shards + a validated JSON manifest; never code), its ``.npy`` files read as data
  (:mod:`~drkit.reinforcement.npyfile`);
- :mod:`~drkit.reinforcement.writer` (lock, atomic files), :mod:`~drkit.reinforcement.journal` (one
  line per shard written) and :mod:`~drkit.reinforcement.session`: the writing side shared by both
  engines (resume, atomic shards);
- :mod:`~drkit.reinforcement.engine` (:func:`reinforce`, the local engine) and
  :mod:`~drkit.reinforcement.ray_engine` (the same store from Ray workers, each a
  :mod:`~drkit.reinforcement.ray_worker`).

"""

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


"""One rank of tests/training/test_ddp.py, started by ``torch.distributed.run --nproc_per_node 2``.

Runs ``drkit train`` (through the CLI's ``main``, as ``torchrun -m drkit train`` does) three times in
this process, each with its own process group: a DR run stopped at the start of its second epoch
(after rank 0 saved the first), the same command again (it resumes), and an ERM run. It records,
per rank, the sample indices each epoch's items came from, which ranks saved checkpoints, and a hash
of the model after each epoch, into ``OUT/rank<R>.json`` for the test to compare across ranks.

    python -m torch.distributed.run --nproc_per_node 2 _ddp_worker.py DATA STORE OUT
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from drkit.cli.main import main
from drkit.training import fresh, loop, reinforced_dataset

data, store, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
rank = int(os.environ["RANK"])
record: dict[str, list] = {"seen": [], "saves": [], "model": []}
seen: list[int] = []


class Stop(Exception):
    """Both ranks stop at the same point: the start of the second epoch of the first run."""


def recording(cls: type) -> None:
    get = cls.__getitem__

    def getitem(self, index):  # num_workers=0: items are made in this process
        seen.append(int(index))
        return get(self, index)

    cls.__getitem__ = getitem


recording(reinforced_dataset.ReinforcedDataset)
recording(fresh.FreshAugmented)
run_epoch, save = loop.Trainer.run_epoch, loop.Trainer.save
stop_at: list[int] = [1]  # stop when an epoch with this index starts; emptied after the first stop


def patched_run_epoch(self, **kwargs):
    if stop_at and self.epoch == stop_at[0]:
        stop_at.clear()
        raise Stop
    seen.clear()
    m = run_epoch(self, **kwargs)
    record["seen"].append(sorted(seen))
    h = hashlib.sha256()
    for k, v in self.model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    record["model"].append(h.hexdigest())
    return m


def patched_save(self, directory):
    record["saves"].append(self.epoch)
    return save(self, directory)


loop.Trainer.run_epoch, loop.Trainer.save = patched_run_epoch, patched_save
common = ["--arch", "smallcnn-4", "--batch-size", "8", "--device", "cpu", "--json", "-q"]
dr = ["train", data, "--mode", "dr", "--store", store, "--epochs", "2", "--out", str(out / "dr"), *common]
try:
    main(dr)
except Stop:
    pass
codes = [main(dr), main(["train", data, "--mode", "erm", "--policy", "cropflip", "--epochs", "1",
                         "--out", str(out / "erm"), *common])]
record["codes"] = codes
(out / f"rank{rank}.json").write_text(json.dumps(record))

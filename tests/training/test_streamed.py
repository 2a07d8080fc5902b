"""StreamedReinforcedDataset: a ``wds:`` source streamed shard by shard, split across DDP ranks and
DataLoader workers (every sample once per epoch across 2 ranks x 2 workers), records found by key."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_teacher
from PIL import Image
from torch.utils.data import DataLoader

import drkit
from drkit.data import ArrayDataset, load_dataset
from drkit.errors import ConfigError, StoreMismatchError
from drkit.training.reinforced_dataset import ReinforcedDataset
from drkit.training.streamed import StreamedReinforcedDataset, slot_runs

wds = pytest.importorskip("webdataset")


@pytest.fixture(autouse=True)
def _index_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRKIT_CACHE", str(tmp_path / "cache" / "drkit"))


def numbered(n: int) -> ArrayDataset:
    """``n`` 8x8 gray images whose first two pixels spell the sample's number; 3 classes."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 1, 8, 8), dtype=np.uint8)
    images[:, 0, 0, 0], images[:, 0, 0, 1] = np.arange(n) % 256, np.arange(n) // 256
    return ArrayDataset(images, np.arange(n) % 3, name=f"numbered{n}")


def number_of(view: torch.Tensor) -> int:
    """The sample a p=0 view (the original image as float) shows."""
    px = (view[..., 0, 0, :2] * 255).round().long()
    return int(px[..., 0] + 256 * px[..., 1])


def write(ds: ArrayDataset, folder: Path, order: np.ndarray, sizes: list[int]) -> str:
    """Samples ``order`` of ``ds`` as shards of ``sizes``, keys ``k{i}`` (``i``: the sample of ``ds``)."""
    folder.mkdir(parents=True)
    it = iter(order)
    for s, n in enumerate(sizes):
        with wds.TarWriter(str(folder / f"{s:03d}.tar")) as w:
            for _ in range(n):
                i = int(next(it))
                buf = io.BytesIO()
                Image.fromarray(ds.images[i, 0]).save(buf, "PNG")
                w.write({"__key__": f"k{i}", "png": buf.getvalue(), "cls": str(int(ds.labels[i]))})
    return f"{folder}/{{000..{len(sizes) - 1:03d}}}.tar"


def _epoch(ds_per_rank: list[StreamedReinforcedDataset], epoch: int, workers: int) -> list[list[int]]:
    """Sample numbers each rank yields in ``epoch``, through real DataLoader workers."""
    out = []
    for ds in ds_per_rank:
        ds.set_epoch(epoch)
        loader = DataLoader(ds, batch_size=4, num_workers=workers)
        out.append([number_of(v) for views, _, _ in loader for v in views])
    return out


@pytest.mark.parametrize("reader", ["index", "webdataset"])
def test_every_sample_once_per_epoch_across_2_ranks_x_2_workers(tmp_path, reader):
    base = numbered(28)
    pattern = write(base, tmp_path / "shards", np.arange(28), [9, 3, 7, 5, 4])  # 5 shards, 4 slots
    src = load_dataset(f"wds:{pattern}")
    store = drkit.reinforce(src, tiny_teacher(1, 3), tmp_path / "store", policy="cropflip",
                            num_augs=2, topk=3, num_workers=0, progress=False)
    ranks = [StreamedReinforcedDataset(src, store, p=0.0, seed=3, shuffle_buffer=4, rank=r, world_size=2,
                                       reader=reader) for r in range(2)]
    assert [len(r) for r in ranks] == [14, 14]
    seen_by_epoch = []
    for epoch in (0, 1):
        per_rank = _epoch(ranks, epoch, workers=2)
        assert [len(r) for r in per_rank] == [14, 14]  # equal lengths: DDP steps match
        assert sorted(per_rank[0] + per_rank[1]) == list(range(28))  # each sample exactly once
        seen_by_epoch.append(per_rank)
    assert seen_by_epoch[0] != seen_by_epoch[1]  # the shard order and buffer change with the epoch
    assert _epoch(ranks, 1, workers=2) == seen_by_epoch[1]  # ... as a pure function of (seed, epoch)


def test_uneven_split_pads_under_ddp_and_not_alone(tmp_path):
    base = numbered(23)
    pattern = write(base, tmp_path / "shards", np.arange(23), [10, 6, 7])
    src = load_dataset(f"wds:{pattern}")
    store = drkit.reinforce(src, tiny_teacher(1, 3), tmp_path / "store", policy="cropflip",
                            num_augs=2, topk=3, num_workers=0, progress=False)
    padded = [StreamedReinforcedDataset(src, store, p=0.0, rank=r, world_size=2) for r in range(2)]
    per_rank = _epoch(padded, 0, workers=2)
    assert [len(r) for r in per_rank] == [12, 12]  # 4 slots x ceil(23 / 4) = 24: one sample twice
    assert set(per_rank[0] + per_rank[1]) == set(range(23))
    exact = [StreamedReinforcedDataset(src, store, p=0.0, rank=r, world_size=2, pad=False) for r in range(2)]
    per_rank = _epoch(exact, 0, workers=2)
    assert sorted(per_rank[0] + per_rank[1]) == list(range(23))
    # the runs cut the epoch's sample sequence: lengths differ by at most one whatever the shards
    lengths, order = np.array([10, 6, 7]), np.array([2, 0, 1])
    runs = [slot_runs(lengths, order, s, 4) for s in range(4)]
    assert [sum(t for _, _, t in r) for r in runs] == [5, 6, 6, 6]
    assert runs[0] == [(2, 0, 5)] and runs[1] == [(2, 5, 2), (0, 0, 4)]


@pytest.mark.parametrize("reader", ["index", "webdataset"])
def test_streamed_items_are_the_map_style_items_found_by_key(tmp_path, one_thread, reader):
    """A store made from one sharding replays, by key, onto a re-ordered re-sharded copy: every
    streamed item (mixing partners read by index) equals ReinforcedDataset's for that key."""
    base = numbered(20)
    made = load_dataset(f"wds:{write(base, tmp_path / 'a', np.arange(20), [8, 12])}")
    store = drkit.reinforce(made, tiny_teacher(1, 3), tmp_path / "store",
                            policy="randaugment+mixing", num_augs=3, topk=3, num_workers=0, progress=False)
    assert store.has_sample_keys
    copy_order = np.random.default_rng(5).permutation(20)
    copy = load_dataset(f"wds:{write(base, tmp_path / 'b', copy_order, [5, 5, 5, 5])}")
    streamed = StreamedReinforcedDataset(copy, store, seed=2, shuffle_buffer=1, shuffle_shards=False, reader=reader)
    mapped = ReinforcedDataset(made, store, seed=2)
    for e in (0, 1):
        streamed.set_epoch(e)
        mapped.set_epoch(e)
        for j, (view, target, label) in enumerate(streamed):
            want = mapped[int(copy_order[j])]
            assert torch.equal(view, want[0]) and torch.equal(target, want[1]) and label == want[2]
    assert j == 19


def test_refusals(tmp_path, digits60):
    base = numbered(12)
    src = load_dataset(f"wds:{write(base, tmp_path / 'a', np.arange(12), [6, 6])}")
    store = drkit.reinforce(src, tiny_teacher(1, 3), tmp_path / "store", policy="cropflip",
                            num_augs=2, topk=3, num_workers=0, progress=False)
    with pytest.raises(ConfigError, match="rank must be in 0..world_size-1"):
        StreamedReinforcedDataset(src, store, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="reader must be 'index' or 'webdataset'"):
        StreamedReinforcedDataset(src, store, reader="tar")
    with pytest.raises(ConfigError, match="reads webdataset shards"):
        StreamedReinforcedDataset(digits60, store)  # type: ignore[arg-type]
    other = load_dataset(f"wds:{write(numbered(14), tmp_path / 'b', np.arange(14), [14])}")
    with pytest.raises(StoreMismatchError, match="no records for 2 of the 14 samples .*'k12', 'k13'"):
        StreamedReinforcedDataset(other, store)


def test_train_dr_stream_on_wds_through_the_cli(tmp_path, capsys, monkeypatch, one_thread):
    """``drkit train wds:... --mode dr --stream``: the run trains on the streamed store, and
    ``--stream`` elsewhere is a clear error."""
    from drkit.cli.main import main

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1]))
    data = f"wds:{write(numbered(24), tmp_path / 'shards', np.arange(24), [10, 14])}"
    store, run = tmp_path / "store", tmp_path / "run"
    assert main(["reinforce", data, "--teacher", "python:_cli_teachers:tiny", "--policy", "randaugment+mixing",
                 "--num-augs", "2", "--topk", "3", "--num-workers", "0", "--out", str(store), "-q"]) == 0
    capsys.readouterr()
    assert main(["train", data, "--mode", "dr", "--stream", "--store", str(store), "--arch", "smallcnn-4",
                 "--epochs", "2", "--batch-size", "8", "--num-workers", "2", "--out", str(run), "--json", "-q"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["complete"] and m["config"]["stream"] is True and len(m["epochs"]) == 2
    assert main(["train", data, "--mode", "erm", "--stream", "--arch", "smallcnn-4", "--epochs", "1",
                 "--out", str(tmp_path / "erm")]) == 1
    assert "stream is for dr students" in capsys.readouterr().err

"""Streamed and columnar sources (issue 23, point 2): ``wds:PATTERN`` webdataset tar shards and
``hf:PATH[:split]`` Hugging Face datasets, through reinforce -> verify -> train -> eval, their
errors, and dict-yielding / iterable PyTorch datasets from the Python API."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset, IterableDataset

import drkit
from drkit.cli.main import main
from drkit.data import ArrayDataset, load_dataset
from drkit.data import webdataset_source as wsrc
from drkit.errors import DataError

wds = pytest.importorskip("webdataset")
datasets = pytest.importorskip("datasets")

TESTS = Path(__file__).parent


@pytest.fixture(autouse=True)
def _offline_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Index and HF caches in the test's folder; teachers importable for ``python:`` specs."""
    monkeypatch.setenv("DRKIT_CACHE", str(tmp_path / "cache" / "drkit"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    monkeypatch.syspath_prepend(str(TESTS))


@pytest.fixture()
def digits30(_digits_train: ArrayDataset) -> ArrayDataset:
    return _digits_train.subset(np.arange(30), name="digits30")


def _png(image: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image.numpy()[0] if image.shape[0] == 1 else image.permute(1, 2, 0).numpy()).save(buf, "PNG")
    return buf.getvalue()


def write_shards(ds: ArrayDataset, folder: Path, sizes: list[int], *, ext: str = "png", label: str = "cls") -> str:
    """``ds`` as tar shards of ``sizes`` samples (webdataset's TarWriter), keys ``s{i:04d}``; the pattern."""
    folder.mkdir(parents=True, exist_ok=True)
    i = 0
    for s, n in enumerate(sizes):
        with wds.TarWriter(str(folder / f"part-{s:03d}.tar")) as w:
            for _ in range(n):
                w.write({"__key__": f"s{i:04d}", ext: _png(ds.image(i)), label: str(int(ds.labels[i])),
                         "json": json.dumps({"i": i}).encode()})
                i += 1
    assert i == len(ds)
    return f"{folder}/part-{{000..{len(sizes) - 1:03d}}}.tar"


def write_hf(ds: ArrayDataset, path: Path, *, parquet: bool = False) -> str:
    features = datasets.Features({"img": datasets.Image(), "digit": datasets.ClassLabel(names=ds.classes)})
    hf = datasets.Dataset.from_dict(
        {"img": [Image.open(io.BytesIO(_png(ds.image(i)))) for i in range(len(ds))], "digit": ds.labels.tolist()},
        features=features)
    if parquet:
        hf.to_parquet(str(path))
    else:
        hf.save_to_disk(str(path))
    return str(path)


# --------------------------------------------------------------------------- webdataset


def test_wds_reads_what_was_written(digits30, tmp_path):
    pattern = write_shards(digits30, tmp_path / "shards", [12, 10, 8])
    ds = load_dataset(f"wds:{pattern}")
    assert isinstance(ds, wsrc.WebDatasetSource) and len(ds) == 30 and ds.num_classes == 10
    assert [p.name for p in ds.shards] == ["part-000.tar", "part-001.tar", "part-002.tar"]
    np.testing.assert_array_equal(ds.labels, digits30.labels)
    for i in (0, 11, 12, 29):  # PNG is lossless: the pixels come back exactly
        assert torch.equal(ds.image(i), digits30.image(i))
    assert ds.key(13) == "s0013" and ds.channels == 1
    # the keys are the ones webdataset's own streaming pipeline yields
    streamed = [s["__key__"] for s in wds.tariterators.tarfile_samples([{"url": str(p)} for p in ds.shards])]
    assert streamed == [ds.key(i) for i in range(len(ds))]


def test_wds_index_is_cached_and_invalidated(digits30, tmp_path, monkeypatch):
    pattern = write_shards(digits30, tmp_path / "shards", [15, 15])
    first = load_dataset(f"wds:{pattern}")
    assert len(list((tmp_path / "cache" / "drkit" / "wds-index").glob("*.npz"))) == 2

    def no_reindex(*a, **k):
        raise AssertionError("re-indexed a shard whose index is cached")

    monkeypatch.setattr(wsrc, "_index_shard", no_reindex)
    again = load_dataset(f"wds:{pattern}")
    np.testing.assert_array_equal(again.labels, first.labels)
    assert torch.equal(again.image(20), first.image(20))
    monkeypatch.undo()
    monkeypatch.setenv("DRKIT_CACHE", str(tmp_path / "cache" / "drkit"))
    # a rewritten shard (other labels) is indexed anew, not served from the stale cache
    relabelled = ArrayDataset(digits30.images, (digits30.labels + 1) % 10, classes=digits30.classes)
    write_shards(relabelled, tmp_path / "shards", [15, 15])
    np.testing.assert_array_equal(load_dataset(f"wds:{pattern}").labels, relabelled.labels)


def test_wds_classes_file_options_and_glob(digits30, tmp_path):
    sub = ArrayDataset(digits30.images[:6], np.array([0, 1, 2, 0, 1, 2]), name="six")
    folder = tmp_path / "shards"
    write_shards(sub, folder, [6], ext="jpeg", label="label")
    ds = load_dataset(f"wds:{folder}/part-*.tar")
    assert ds.classes == ["0", "1", "2"]  # no classes file: max label + 1
    (folder / "classes.txt").write_text("zero\none\ntwo\nthree\n")
    ds = load_dataset(f"wds:{folder}/part-000.tar?channels=3")
    assert ds.classes == ["zero", "one", "two", "three"] and ds.image(0).shape == (3, 8, 8)
    (folder / "classes.txt").write_text("zero\none\n")
    with pytest.raises(DataError, match="names only 2 classes"):
        load_dataset(f"wds:{folder}/part-000.tar")


def _raw_tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("members, message", [
    ({"a.png": b"png", "b.png": b"png", "b.cls": b"1"}, "'a' of .* has no label"),
    ({"a.cls": b"1"}, "'a' of .* has no image"),
    ({"a.png": b"x", "a.jpg": b"x", "a.cls": b"1"}, "several images \\(jpg, png\\)"),
    ({"a.png": b"x", "a.cls": b"cat"}, "label must be a non-negative integer"),
])
def test_wds_bad_samples_are_named(tmp_path, members, message):
    _raw_tar(tmp_path / "bad.tar", members)
    with pytest.raises(DataError, match=message):
        load_dataset(f"wds:{tmp_path}/bad.tar")


def test_wds_pattern_errors(digits30, tmp_path):
    with pytest.raises(DataError, match="no files match"):
        load_dataset(f"wds:{tmp_path}/nothing-*.tar")
    pattern = write_shards(digits30, tmp_path / "shards", [10, 10, 10])
    (tmp_path / "shards" / "part-001.tar").unlink()
    with pytest.raises(DataError, match="1 shards of .* do not exist: .*part-001.tar"):
        load_dataset(f"wds:{pattern}")
    with pytest.raises(DataError, match="not a local file"):
        load_dataset("wds:https://example.org/train-{0..3}.tar")
    with pytest.raises(DataError, match="unknown option colour"):
        load_dataset(f"wds:{pattern}?colour=1")
    # the same key in two shards: a store could not find its records by key
    write_shards(digits30.subset(np.arange(4)), tmp_path / "a", [4])
    write_shards(digits30.subset(np.arange(4)), tmp_path / "b", [4])
    with pytest.raises(DataError, match="4 keys appear in more than one sample"):
        load_dataset(f"wds:{tmp_path}/a/part-000.tar::{tmp_path}/b/part-000.tar")
    # a compressed shard cannot be read in place
    (tmp_path / "c.tar.gz").write_bytes(__import__("gzip").compress((tmp_path / "a" / "part-000.tar").read_bytes()))
    with pytest.raises(DataError, match="not an uncompressed tar"):
        load_dataset(f"wds:{tmp_path}/c.tar.gz")
    # an undecodable image is named when it is read
    _raw_tar(tmp_path / "junk.tar", {"k.png": b"not an image", "k.cls": b"0"})
    with pytest.raises(DataError, match="cannot decode image 'k' in .*junk.tar"):
        load_dataset(f"wds:{tmp_path}/junk.tar")


# --------------------------------------------------------------------------- Hugging Face datasets


def test_hf_save_to_disk_and_parquet_read_what_was_written(digits30, tmp_path):
    saved = write_hf(digits30, tmp_path / "saved")
    parquet = write_hf(digits30, tmp_path / "d.parquet", parquet=True)
    for spec in (f"hf:{saved}", f"hf:{saved}:train", f"hf:{parquet}"):
        ds = load_dataset(spec)
        assert len(ds) == 30 and ds.classes == digits30.classes and ds.key(7) == "7"
        np.testing.assert_array_equal(ds.labels, digits30.labels)
        assert torch.equal(ds.image(5), digits30.image(5)) and ds.image(5).dtype == torch.uint8


def test_hf_dataset_dict_columns_and_errors(digits30, tmp_path):
    hf = datasets.Dataset.from_dict({"pixels": [digits30.images[i, 0].tolist() for i in range(8)],
                                     "kind": [["a", "b"][i % 2] for i in range(8)], "other": list(range(8))})
    dd = datasets.DatasetDict({"train": hf, "test": hf.select(range(4))})
    dd.save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(DataError, match="no image column .* pixels, kind, other: name it with \\?image=COLUMN"):
        load_dataset(f"hf:{tmp_path / 'dd'}")
    ds = load_dataset(f"hf:{tmp_path / 'dd'}:test?image=pixels&label=kind")
    assert len(ds) == 4 and ds.classes == ["a", "b"] and list(ds.labels) == [0, 1, 0, 1]  # string labels
    assert torch.equal(ds.image(1), digits30.image(1))
    with pytest.raises(DataError, match="no split 'validation'; its splits are train, test"):
        load_dataset(f"hf:{tmp_path / 'dd'}:validation?image=pixels&label=kind")
    with pytest.raises(DataError, match="no column 'nope'"):
        load_dataset(f"hf:{tmp_path / 'dd'}?image=pixels&label=nope")
    with pytest.raises(DataError, match="unknown option lable"):
        load_dataset(f"hf:{tmp_path / 'dd'}?image=pixels&lable=kind")
    unlabelled = datasets.Dataset.from_dict({"image": [digits30.images[0, 0].tolist()] * 2, "label": [-1, -1]})
    with pytest.raises(DataError, match="2 rows have no label"):
        load_dataset(unlabelled)
    with pytest.raises(DataError, match="a DatasetDict with splits train, test; pass one split"):
        load_dataset(dd)
    with pytest.raises(DataError, match="streamed IterableDataset has no random access"):
        load_dataset(hf.to_iterable_dataset())
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"hf:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither a save_to_disk folder .* nor a .parquet file"):
        load_dataset(f"hf:{tmp_path / 'empty'}")


def test_hf_hub_name_offline_and_not_cached_says_how_to_get_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def not_cached(*args, **kwargs):  # what datasets raises offline for a dataset it has never seen
        raise ConnectionError("Couldn't reach 'someone/tiny-digits' on the Hub (offline mode is enabled)")

    monkeypatch.setattr(datasets, "load_dataset", not_cached)
    with pytest.raises(DataError, match="not in the local Hugging Face cache and the hub is offline.*"
                                        "datasets.load_dataset\\('someone/tiny-digits'\\)"):
        load_dataset("hf:someone/tiny-digits:train")


# --------------------------------------------------------------------------- PyTorch datasets


class DictDigits(Dataset):
    """Yields ``{"image": PIL, "label": int}``, as Hugging Face-style datasets do."""

    def __init__(self, ds: ArrayDataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict:
        return {"image": Image.fromarray(self.ds.images[i, 0]), "label": int(self.ds.labels[i]), "id": i}


class Stream(IterableDataset):
    def __iter__(self):
        yield torch.zeros(1, 8, 8), 0


def test_dict_items_reinforce_and_iterable_is_refused(digits30, tmp_path, digits_teacher):
    store = drkit.reinforce(DictDigits(digits30), digits_teacher, tmp_path / "s", policy="cropflip", num_augs=2,
                            topk=3, num_workers=0, progress=False)  # was KeyError 1
    assert store.num_samples == 30
    ds = load_dataset(DictDigits(digits30))
    assert torch.equal(ds.image(3), digits30.image(3)) and list(ds.labels) == list(digits30.labels)
    with pytest.raises(DataError, match="iterable dataset .*\\(wds:PATTERN\\)"):
        drkit.reinforce(Stream(), digits_teacher, tmp_path / "t", progress=False)


# --------------------------------------------------------------------------- the commands, end to end


def _reinforce_verify_train_eval(data: str, tmp_path: Path, capsys) -> dict:
    store, run = tmp_path / "store", tmp_path / "run"
    assert main(["reinforce", data, "--teacher", "python:_cli_teachers:tiny", "--policy", "randaugment+mixing",
                 "--num-augs", "2", "--topk", "3", "--shard-size", "16", "--num-workers", "0",
                 "--out", str(store), "-q"]) == 0
    capsys.readouterr()
    assert main(["verify", str(store), "--data", data, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dataset_checked"] is True
    assert main(["train", data, "--mode", "dr", "--store", str(store), "--arch", "smallcnn-4", "--epochs", "1",
                 "--batch-size", "16", "--eval-data", data, "--out", str(run), "--json", "-q"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["complete"] and m["config"]["dataset"] == data and m["config"]["train_samples"] == 30
    assert main(["eval", str(run), "--data", data, "--no-corruptions", "--no-shifts", "--json", "-q"]) == 0
    return json.loads(capsys.readouterr().out)


def test_wds_reinforce_verify_train_eval(digits30, tmp_path, capsys, one_thread):
    pattern = write_shards(digits30, tmp_path / "shards", [16, 14])
    e = _reinforce_verify_train_eval(f"wds:{pattern}", tmp_path, capsys)
    assert e["num_samples"] == 30 and 0 <= e["metrics"]["top1"] <= 1


def test_hf_reinforce_verify_train_eval(digits30, tmp_path, capsys, one_thread):
    e = _reinforce_verify_train_eval(f"hf:{write_hf(digits30, tmp_path / 'saved')}", tmp_path, capsys)
    assert e["num_samples"] == 30 and 0 <= e["metrics"]["top1"] <= 1


def test_the_same_images_give_the_same_records_from_every_source(digits30, tmp_path, digits_teacher):
    """An array, wds shards and a Hugging Face dataset of the same PNGs decode to the same pixels, so
    their stores' record shards are byte-identical (only the key tables differ: paths vs row indices)."""
    pattern = write_shards(digits30, tmp_path / "shards", [16, 14])
    saved = write_hf(digits30, tmp_path / "saved")
    shards, schemes = {}, {}
    for name, data in (("array", digits30), ("wds", f"wds:{pattern}"), ("hf", f"hf:{saved}")):
        store = drkit.reinforce(data, digits_teacher, tmp_path / name, policy="randaugment+mixing", num_augs=2,
                                topk=3, shard_size=16, num_workers=0, progress=False)
        shards[name] = [(store.root / s.file).read_bytes() for s in store.shards]
        schemes[name] = store.key_scheme
    assert shards["wds"] == shards["array"] == shards["hf"]
    assert schemes == {"array": "index", "wds": "__key__", "hf": "index"}  # what each store says its keys are

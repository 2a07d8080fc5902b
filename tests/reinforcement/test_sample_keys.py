"""Sample keys (issue 23, point 1): a store records each sample's key, content hash and label, so it
replays on another copy of its dataset (listed in another order, samples missing or changed), and
its key tables are checked like its shards."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from _image_folders import mixed_size_folder
from conftest import tiny_teacher

import drkit
from drkit.cli.main import main
from drkit.data import ArrayDataset, ImageFolderDataset
from drkit.data.samples import MAX_KEY_BYTES, content_hash, key_dtype, key_table, key_table_problem
from drkit.errors import DataError, ManifestError, StoreCorruptError, StoreMismatchError
from drkit.reinforcement.manifest import seal
from drkit.reinforcement.matching import SampleMismatchError
from drkit.reinforcement.store import MANIFEST, Store
from drkit.training.loop import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")

RUN = {"policy": "randaugment+mixing", "num_augs": 3, "topk": 3, "image_size": 16, "shard_size": 4,
       "teacher_batch": 5, "batch_size": 8, "num_workers": 0, "progress": False}


@pytest.fixture()
def folder(tmp_path) -> Path:
    return mixed_size_folder(tmp_path / "data", n=12)


@pytest.fixture()
def made(folder, tmp_path):
    base = ImageFolderDataset(folder)
    store = drkit.reinforce(base, tiny_teacher(3, 3), tmp_path / "store", **RUN)
    return base, store


def _listed(ds: ImageFolderDataset, order) -> ImageFolderDataset:
    """``ds`` with its files listed in ``order`` (as an unsorted directory listing would give them)."""
    order = list(order)
    ds.files = [ds.files[i] for i in order]
    ds.labels = ds.labels[order]
    return ds


def _copy(folder: Path, dest: Path, order) -> ImageFolderDataset:
    shutil.copytree(folder, dest)
    return _listed(ImageFolderDataset(dest), order)


def _items(ds: drkit.ReinforcedDataset) -> dict[str, list[bytes]]:
    """key -> every stored augmentation's view and target, as bytes."""
    out = {}
    for t in range(len(ds)):
        key = ds.base.key(ds.base_index(t))
        out[key] = [ds.replay(t, j).numpy().tobytes() + ds.target(t, j).numpy().tobytes()
                    for j in range(ds.store.num_augs)]
    return out


def _manifest(root: Path) -> dict:
    return json.loads((root / MANIFEST).read_text())


def _write(root: Path, m: dict) -> None:
    (root / MANIFEST).write_text(json.dumps(m))


# --------------------------------------------------------------------------- what is stored


def test_every_shard_has_its_key_table(made, folder):
    base, store = made
    assert store.has_sample_keys and store.key_scheme == "relative-path"
    keys = np.char.decode(store.sample_keys(), "utf-8")
    assert list(keys) == [base.key(i) for i in range(len(base))] == [
        f.relative_to(folder).as_posix() for f in base.files]
    assert list(store.sample_hashes()) == [content_hash(base.image(i)) for i in range(len(base))]
    assert list(store.sample_labels()) == list(base.labels)
    m = _manifest(store.root)
    assert m["schema_version"] == 3 and m["settings"]["sample_keys"]["scheme"] == "relative-path"
    assert [s["keys_file"] for s in m["shards"]] == [f"keys-{i:05d}.npy" for i in range(3)]
    assert store.rows_for([base.key(7), "c0/none.png", "x" * 2000, base.key(0)]).tolist() == [7, -1, -1, 0]
    assert store.rows_for(store.sample_keys()).tolist() == list(range(12))  # bytes as stored
    assert store.rows_for(np.array([b"c0/0.png", b"q" * 99])).tolist() == [0, -1]
    assert store.rows_for([b"c0/0.png\0", "c0/0.png\0"]).tolist() == [-1, -1]  # no key ends in NUL


def test_open_reads_no_key_table(made):
    store = Store.open(made[1].root)
    assert store._key_maps == {} and store._lookup is None  # built the first time a key is looked up
    store.rows_for(["c0/0.png"])
    assert len(store._key_maps) == 3 and store._lookup is not None


def test_non_ascii_keys_round_trip(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    names = ["ü/naïve-東京.png", "ü/ç a.png", "ascii/plain.png", "ascii/Ωmega.png"]
    for n in names:
        (tmp_path / "d" / n).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(tmp_path / "d" / n)
    base = ImageFolderDataset(tmp_path / "d")
    store = drkit.reinforce(base, tiny_teacher(3, 2), tmp_path / "s", **{**RUN, "policy": "cropflip", "topk": 2})
    assert sorted(np.char.decode(store.sample_keys(), "utf-8")) == sorted(names)
    assert store.rows_for(names).tolist() == [base.files.index(tmp_path / "d" / n) for n in names]
    assert store.verify(base)["sample_keys"]


class _Keyed(ArrayDataset):
    def __init__(self, base: ArrayDataset, keys: list[str]) -> None:
        super().__init__(base.images, base.labels, classes=base.classes, name="keyed")
        self.keys = keys

    def key(self, index: int) -> str:
        return self.keys[index]


@pytest.mark.parametrize("bad,match", [("k" * (MAX_KEY_BYTES + 1), "more than the 1024"), ("a\0b", "NUL"),
                                       ("", "non-empty")], ids=["too-long", "nul", "empty"])
def test_bad_keys_fail_before_anything_is_written(digits60, tmp_path, bad, match):
    keys = [str(i) for i in range(60)]
    keys[33] = bad
    with pytest.raises(DataError, match=match):
        drkit.reinforce(_Keyed(digits60, keys), tiny_teacher(1, 10), tmp_path / "s", **{**RUN, "image_size": None})
    assert not (tmp_path / "s").exists()
    assert key_table(["é" * 512], [1], [2])["key"].dtype.itemsize == MAX_KEY_BYTES  # the bound itself fits


# --------------------------------------------------------------------------- another copy of the data


def test_a_copy_listed_in_another_order_replays_byte_identically(made, folder, tmp_path):
    base, store = made
    order = np.random.default_rng(5).permutation(len(base))
    copy = _copy(folder, tmp_path / "copy", order)
    with pytest.raises(StoreMismatchError, match="another dataset"):
        store.check_dataset(copy)  # the fingerprint (the fast check) differs: positions moved
    original = drkit.ReinforcedDataset(base, store, seed=2)
    moved = drkit.ReinforcedDataset(copy, Store.open(store.root), seed=2)
    assert moved.match.by == "key" and moved.match.complete and len(moved) == len(base)
    assert [moved.row(t) for t in range(len(moved))] == order.tolist()
    assert _items(moved) == _items(original)  # mixing partners included: rows mapped back to the copy's samples
    for epoch in (0, 3):  # the same stored augmentation per sample and epoch, whatever its position
        original.set_epoch(epoch)
        moved.set_epoch(epoch)
        for t in range(len(moved)):
            a, b = moved[t], original[moved.row(t)]
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]
    with pytest.raises(StoreMismatchError, match="match='key'"):
        drkit.ReinforcedDataset(copy, store, match="position")
    report = store.verify(copy)["match"]
    assert report["by"] == "key" and report["matched"] == 12 and report["complete"]


@pytest.fixture()
def damaged_copy(folder, tmp_path):
    """A copy missing two files, one image edited, one moved to another class folder (its key and
    label change: missing, and new), one new."""
    from PIL import Image

    dest = tmp_path / "damaged"
    shutil.copytree(folder, dest)
    (dest / "c1/1.png").unlink()
    (dest / "c2/5.png").unlink()
    img = np.array(Image.open(dest / "c0/3.png"))
    img[0, 0] = 255 - img[0, 0]
    Image.fromarray(img).save(dest / "c0/3.png")
    shutil.move(dest / "c0/6.png", dest / "c1/6.png")  # key changes too: missing + new
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(dest / "c2/new.png")
    return ImageFolderDataset(dest)


def test_missing_and_changed_samples_are_reported(made, damaged_copy, capsys):
    _, store = made
    with pytest.raises(SampleMismatchError) as e:
        drkit.ReinforcedDataset(damaged_copy, store)
    msg, m = str(e.value), e.value.match
    assert (m.matched, m.missing_in_data, m.missing_in_store, m.changed) == (8, 3, 2, 1)
    assert sorted(m.examples["missing_in_data"]) == ["c0/6.png", "c1/1.png", "c2/5.png"]
    assert sorted(m.examples["missing_in_store"]) == ["c1/6.png", "c2/new.png"]
    assert m.examples["changed"] == ["c0/3.png"]
    assert "8 of 12" in msg and "'c1/1.png'" in msg and "only_matching=True" in msg and "--only-matching" in msg

    code = main(["verify", str(store.root), "--data", f"imagefolder:{damaged_copy.root}", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["ok"] is False and out["error_type"] == "SampleMismatchError"
    assert out["match"]["changed"] == 1 and out["match"]["examples"]["changed"] == ["c0/3.png"]
    code = main(["verify", str(store.root), "--data", f"imagefolder:{damaged_copy.root}", "--only-matching"])
    text = capsys.readouterr().out
    assert code == 0 and "matched by sample key: 8 of 12" in text and "'c0/3.png'" in text


def test_only_matching_trains_on_the_rest(made, damaged_copy, caplog):
    base, store = made
    original = drkit.ReinforcedDataset(base, store)
    with caplog.at_level(logging.WARNING):
        ds = drkit.ReinforcedDataset(damaged_copy, Store.open(store.root), only_matching=True)
    assert "using the 8 matching samples only" in caplog.text
    kept = {damaged_copy.key(ds.base_index(t)) for t in range(len(ds))}
    assert len(ds) <= 8 and kept <= set(_items(original)) and "c0/3.png" not in kept
    assert ds._allowed is not None  # some stored augmentations mix with a missing partner: never chosen
    missing = {store.rows_for([k])[0] for k in ("c0/6.png", "c1/1.png", "c2/5.png")}
    want = _items(original)
    for epoch in range(3):
        ds.set_epoch(epoch)
        for t in range(len(ds)):
            (aug,) = ds.choose(t)
            assert int(store.record(ds.row(t), aug)["partner"]) not in missing  # never a missing partner
            key = damaged_copy.key(ds.base_index(t))
            got = ds.replay(t, int(aug)).numpy().tobytes() + ds.target(t, int(aug)).numpy().tobytes()
            assert got == want[key][int(aug)]
    torch.manual_seed(0)
    history = train(drkit.models.SmallCNN(3, 3, width=4), ds, TrainConfig(epochs=1, batch_size=4, num_workers=0),
                    progress=False)
    assert len(history) == 1 and np.isfinite(history[0]["loss"])


def test_a_copy_with_other_classes_or_nothing_in_common_is_refused(made, tmp_path, rgb12):
    _, store = made
    with pytest.raises(StoreMismatchError, match="no sample matches"):
        drkit.ReinforcedDataset(rgb12, store, only_matching=True)  # keys '0'..'11' are not paths
    with pytest.raises(StoreMismatchError, match="classes"):
        drkit.ReinforcedDataset(ArrayDataset(rgb12.images, np.arange(12) % 2), store)


# --------------------------------------------------------------------------- older stores


def _as_schema_2(root: Path) -> None:
    """The store as drkit 0.2 wrote it: no key tables, no settings.sample_keys."""
    m = _manifest(root)
    m["schema_version"] = 2
    m["settings"].pop("sample_keys")
    for s in m["shards"]:
        (root / s.pop("keys_file")).unlink()
        s.pop("keys_bytes")
        s.pop("keys_sha256")
    _write(root, seal(m))


def test_schema_2_stores_open_and_replay_by_position_only(made, folder, tmp_path):
    base, store = made
    want = _items(drkit.ReinforcedDataset(base, store))
    _as_schema_2(store.root)
    old = Store.open(store.root, dataset=base)
    assert not old.has_sample_keys and old.summary()["sample_keys"] is None and old.key_scheme is None
    assert _items(drkit.ReinforcedDataset(base, old)) == want
    assert old.verify(base)["sample_keys"] is False
    copy = _copy(folder, tmp_path / "copy", range(11, -1, -1))
    with pytest.raises(StoreMismatchError, match=r"no sample keys \(schema 2\)"):
        drkit.ReinforcedDataset(copy, old)


def test_key_fields_in_a_schema_2_manifest_are_damage(made):
    root = made[1].root
    m = _manifest(root)
    m["schema_version"] = 2
    _write(root, seal(m))
    with pytest.raises(ManifestError, match=r"shards\[0\].keys_file: sample keys need schema version 3"):
        Store.open(root)


# --------------------------------------------------------------------------- damaged key entries


@pytest.mark.parametrize("edit,error,match", [
    (lambda m: m["shards"][1].update(keys_file="keys-00000.npy"), ManifestError, r"shards\[1\].keys_file"),
    (lambda m: m["shards"][0].update(keys_file="../keys-00000.npy"), ManifestError, r"shards\[0\].keys_file"),
    (lambda m: m["shards"][0].update(keys_file="keys-00000.npz"), ManifestError, r"shards\[0\].keys_file"),
    (lambda m: m["shards"][2].pop("keys_sha256"), ManifestError, r"shards\[2\].keys_sha256: missing"),
    (lambda m: m["shards"][0].update(keys_bytes=3), ManifestError, r"keys_bytes"),
    (lambda m: m["settings"].pop("sample_keys"), ManifestError, r"settings.sample_keys: missing"),
    (lambda m: m["shards"][0].update(keys_sha256="0" * 64), ManifestError, r"entry_sha256"),  # not resealed
], ids=["other-shard's", "outside", "suffix", "no-checksum", "too-small", "no-scheme", "checksum-unsealed"])
def test_damaged_key_entries_are_refused(made, edit, error, match):
    root = made[1].root
    m = _manifest(root)
    edit(m)
    _write(root, m)
    with pytest.raises(error, match=match):
        Store.open(root)


def test_a_key_table_that_fails_its_checksum_is_caught_when_read(made):
    root = made[1].root
    m = _manifest(root)
    m["shards"][1]["keys_sha256"] = "0" * 64
    _write(root, seal(m))  # resealed: the entry vouches for the wrong checksum
    store = Store.open(root)
    with pytest.raises(StoreCorruptError, match="keys-00001.npy fails its checksum"):
        store.sample_keys()
    with pytest.raises(StoreCorruptError, match="keys-00001.npy fails its checksum"):
        Store.open(root).verify()


def test_missing_truncated_or_retyped_key_tables(made):
    base, store = made
    root = store.root
    (root / "keys-00002.npy").write_bytes((root / "keys-00002.npy").read_bytes()[:-5])
    with pytest.raises(StoreCorruptError, match="key table keys-00002.npy is .* bytes"):
        Store.open(root)
    (root / "keys-00002.npy").unlink()
    with pytest.raises(StoreCorruptError, match="key table keys-00002.npy is missing"):
        Store.open(root)
    bad = np.zeros(4, dtype=[("key", "S8"), ("hash", "<u8"), ("label", "<i8")])  # not a key table's dtype
    np.save(root / "keys-00002.npy", bad, allow_pickle=False)
    m = _manifest(root)
    m["shards"][2].update(keys_bytes=(root / "keys-00002.npy").stat().st_size,
                          keys_sha256=hashlib.sha256((root / "keys-00002.npy").read_bytes()).hexdigest())
    _write(root, seal(m))
    with pytest.raises(StoreCorruptError, match="not a key table"):
        Store.open(root).verify()


def _raw_table(*keys: bytes) -> np.ndarray:
    table = np.zeros(len(keys), dtype=key_dtype(8))
    table["key"] = keys
    return table


@pytest.mark.parametrize("keys,problem", [
    ((b"a/1.png", "é/ü".encode(), b"x" * 8), None),  # full-width and multi-byte keys are fine
    ((b"a", b""), "an empty sample key (row 1)"),
    ((b"a", b"b\0c"), "a NUL inside a sample key"),
    ((b"a", b"\xa9x"), "not UTF-8 (row 1)"),  # starts on a continuation byte
    ((b"ok", b"ab\xc3("), "not UTF-8 (row 1: invalid continuation byte)"),
    ((b"abc\xe2\x82",), "not UTF-8 (row 0"),  # a character cut short at the field's end
])
def test_key_table_problem_finds_what_encode_key_never_writes(keys, problem):
    got = key_table_problem(_raw_table(*keys))
    assert got is None if problem is None else problem in got


def test_a_damaged_key_inside_a_sealed_table_fails_verify(made):
    root = made[1].root
    table = np.load(root / "keys-00001.npy")
    table["key"][2] = b"\xff" + table["key"][2][1:]  # not UTF-8; checksum and manifest resealed below
    np.save(root / "keys-00001.npy", table, allow_pickle=False)
    m = _manifest(root)
    m["shards"][1]["keys_sha256"] = hashlib.sha256((root / "keys-00001.npy").read_bytes()).hexdigest()
    _write(root, seal(m))
    with pytest.raises(StoreCorruptError, match=r"keys-00001.npy: a sample key that is not UTF-8 \(row 2[:)]"):
        Store.open(root).verify()


def test_verify_reads_every_file_once(made, monkeypatch):
    from drkit.reinforcement import store as store_mod

    read: list[str] = []
    real = store_mod.read_array
    monkeypatch.setattr(store_mod, "read_array", lambda path, *a, **k: (read.append(path.name), real(path, *a, **k))[1])
    monkeypatch.setattr(store_mod, "sha256_file", lambda path: read.append(f"hashed {path.name}") or "")
    store = Store.open(made[1].root)
    store.verify()
    names = [n for s in store.shards for n in (s.file, s.keys_file)]
    assert sorted(read) == sorted(names)  # each read (and hashed from that buffer) once, nothing hashed apart
    store.sample_keys(), store.records(0), store.records(store.num_samples - 1)
    assert len(read) == len(names)  # reads after verify() map the files it checked: not hashed again


def test_a_resumed_store_keeps_complete_key_tables(made, folder, tmp_path, snapshot):
    base, store = made
    reference = snapshot(store.root)
    m = _manifest(store.root)
    m["complete"], m["shards"] = False, m["shards"][:1]
    _write(store.root, seal(m))
    (store.root / "keys-00001.npy").unlink()  # killed before shard 1's key table was renamed
    (store.root / "shard-00002.npy").unlink()  # killed between shard 2's two renames (keys first)
    resumed = drkit.reinforce(ImageFolderDataset(folder), tiny_teacher(3, 3), store.root, **RUN)
    assert resumed.run_stats["records_computed"] == 8 * 3
    assert snapshot(store.root) == reference


# --------------------------------------------------------------------------- engines


def test_ray_engine_writes_the_same_key_tables(folder, tmp_path, snapshot):
    ray = pytest.importorskip("ray")
    from drkit.reinforcement.ray_engine import RayOptions

    base = ImageFolderDataset(folder)
    local = drkit.reinforce(base, tiny_teacher(3, 3), tmp_path / "local", **RUN)
    ray.init(num_cpus=1, include_dashboard=False, logging_level=logging.WARNING)
    try:
        remote = drkit.reinforce(base, tiny_teacher(3, 3), tmp_path / "ray", engine="ray",
                                 ray_options=RayOptions(workers=1), **RUN)
    finally:
        ray.shutdown()
    a, b = snapshot(local.root), snapshot(remote.root)
    assert sorted(k for k in a if k.startswith("keys-")) == [f"keys-{i:05d}.npy" for i in range(3)]
    assert a == b


def test_train_only_matching_on_a_damaged_copy(made, damaged_copy, tmp_path, capsys):
    _, store = made
    argv = ["train", f"imagefolder:{damaged_copy.root}", "--mode", "dr", "--store", str(store.root), "--arch",
            "smallcnn-4", "--epochs", "1", "--batch-size", "4", "--device", "cpu", "-q", "--out"]
    assert main([*argv, str(tmp_path / "refused")]) == 1  # a partial copy is an error by default
    assert "for 8 of 12 samples" in capsys.readouterr().err
    assert main([*argv, str(tmp_path / "run"), "--only-matching"]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["only_matching"] is True and config["train_samples"] == 8  # the 8 of 12 that match
    with pytest.raises(drkit.ConfigError, match="only_matching is for dr"):
        drkit.train_run(damaged_copy, tmp_path / "erm", mode="erm", only_matching=True)

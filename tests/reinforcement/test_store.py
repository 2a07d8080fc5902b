"""The store: a checked manifest, fixed-width records in checksummed shards, clear errors for the
wrong dataset, truncated or bit-flipped shards, unknown schema versions and damaged manifests."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from drkit import Store, StoreCorruptError, StoreError, StoreMismatchError
from drkit.augment.policies import Policy
from drkit.data import ArrayDataset
from drkit.reinforcement.manifest import seal
from drkit.reinforcement.store import (
    MANIFEST,
    SCHEMA_VERSION,
    dtype_from_json,
    dtype_to_json,
    read_manifest,
    record_dtype,
    shard_ranges,
)
from drkit.reinforcement.writer import ShardWriter

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest


@pytest.fixture()
def store(digits60, digits_teacher, make_store) -> Store:
    return make_store(digits60, digits_teacher)


def _edit_manifest(root: Path, edit) -> None:
    path = root / MANIFEST
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


# --------------------------------------------------------------------------- layout


def test_layout_and_manifest(store):
    root = store.root
    assert sorted(p.name for p in root.iterdir()) == [
        "keys-00000.npy", "keys-00001.npy", "keys-00002.npy", "keys-00003.npy",
        "manifest.json", "shard-00000.npy", "shard-00001.npy", "shard-00002.npy", "shard-00003.npy"]
    m = json.loads((root / MANIFEST).read_text())
    assert m["format"] == "drkit-store" and m["schema_version"] == SCHEMA_VERSION and m["complete"] is True
    st = m["settings"]
    assert st["num_augs"] == 3 and st["topk"] == 3 and st["seed"] == 0 and st["shard_size"] == 16
    assert st["dataset"]["length"] == 60 and st["dataset"]["num_classes"] == 10
    assert st["policy"]["name"] == "randaugment+mixing"
    assert [(s["index"], s["start"], s["stop"]) for s in m["shards"]] == [(0, 0, 16), (1, 16, 32), (2, 32, 48),
                                                                           (3, 48, 60)]
    for s in m["shards"]:
        assert (root / s["file"]).stat().st_size == s["bytes"]
    assert "time" not in json.dumps(m).lower()  # nothing that varies between runs


def test_record_dtype_fields(store):
    dt = store.record_dtype
    assert dt.names == ("crop", "flip", "ra_op", "ra_mag", "erase", "partner", "partner_aug", "mix_mode", "mix_lam",
                        "mix_box", "probs", "classes")
    assert dt["probs"].base == np.dtype("<f2") and dt["probs"].shape == (3,)
    assert dt["classes"].base == np.dtype(np.uint8) and dt["classes"].shape == (3,)
    assert dt.itemsize == 38 + 3 * 2 + 3 * 1
    assert all(dt[n].base.kind in "uif" for n in dt.names)  # plain numbers: nothing to unpickle
    shard = np.load(store.root / "shard-00000.npy", allow_pickle=False)
    assert shard.dtype == dt and shard.shape == (16, 3)
    assert not store.dense


def test_record_dtype_function():
    param = Policy("cropflip", (1, 8, 8)).param_dtype
    sparse = record_dtype(param, 1000, 5)
    assert sparse["classes"].base == np.dtype("<u2") and sparse.itemsize == 9 + 10 + 10
    dense = record_dtype(param, 10, 10)
    assert "classes" not in dense.names and dense["probs"].shape == (10,) and dense.itemsize == 9 + 20
    assert record_dtype(param, 10, 50) == dense
    assert dtype_from_json(json.loads(json.dumps(dtype_to_json(sparse)))) == sparse


def test_dtype_from_json_refuses_objects():
    with pytest.raises(StoreCorruptError, match="record_dtype is invalid"):
        dtype_from_json([["crop", "<u2", [4]], ["evil", "|O", []]])
    with pytest.raises(StoreCorruptError, match="record_dtype is invalid"):
        dtype_from_json([["crop", "not-a-type", []]])


def test_shard_ranges():
    assert shard_ranges(60, 16) == [(0, 0, 16), (1, 16, 32), (2, 32, 48), (3, 48, 60)]
    assert shard_ranges(16, 16) == [(0, 0, 16)]
    assert shard_ranges(5, 100) == [(0, 0, 5)]


def test_shard_writer(tmp_path):
    recs = np.zeros((4, 2), dtype=[("a", "<u2"), ("p", "<f2", (3,))])
    recs["a"] = np.arange(8).reshape(4, 2)
    info = ShardWriter(tmp_path).write(7, 40, recs)
    assert (info.index, info.start, info.stop, info.file) == (7, 40, 44, "shard-00007.npy")
    path = tmp_path / info.file
    assert info.bytes == path.stat().st_size
    import hashlib

    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not list(tmp_path.glob("*.tmp"))
    np.testing.assert_array_equal(np.load(path, allow_pickle=False), recs)
    (tmp_path / "shard-00009.npy.tmp").write_bytes(b"half")
    ShardWriter(tmp_path).clean_temporaries()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-00007.npy"]


# --------------------------------------------------------------------------- reading


def test_open_and_read(store, digits60):
    s = Store.open(store.root, dataset=digits60)
    assert (s.num_samples, s.num_augs, s.topk, s.num_classes, s.seed) == (60, 3, 3, 10, 0)
    rec = s.record(17, 2)
    np.testing.assert_array_equal(s.records(17)[2], rec)
    shard = np.load(store.root / "shard-00001.npy", allow_pickle=False)
    assert rec.tobytes() == shard[1, 2].tobytes()
    assert isinstance(s._shard(1).base, np.memmap)  # a view of the shard's memory map, read lazily
    assert s.records(59).shape == (3,)
    assert "samples=60" in repr(s)


def test_record_params_are_the_policys_pure_samples(store):
    policy = store.policy()
    for i, j in [(0, 0), (15, 2), (16, 0), (59, 1)]:
        want = policy.sample(store.seed, i, j, num_samples=60, num_augs=3)
        got = store.record(i, j)
        for name in policy.param_dtype.names:
            np.testing.assert_array_equal(got[name], want[name])


def test_out_of_range(store):
    with pytest.raises(IndexError):
        store.records(60)
    with pytest.raises(IndexError):
        store.records(-1)
    with pytest.raises(IndexError):
        store.record(0, 3)


def test_store_pickles_without_its_maps(store):
    before = store.record(20, 1).tobytes()
    clone = pickle.loads(pickle.dumps(store))
    assert clone._maps == {} and clone.record(20, 1).tobytes() == before


def test_verify_and_summary(store, digits60):
    report = store.verify(digits60)
    assert report["shards"] == 4 and report["records"] == 180 and report["dataset_checked"] is True
    shard_bytes = sum(p.stat().st_size for p in store.root.glob("shard-*.npy"))
    assert report["bytes"] == shard_bytes == store.nbytes()
    sums = [np.load(p, allow_pickle=False)["probs"].astype(np.float32).sum(-1).max()
            for p in store.root.glob("shard-*.npy")]
    assert report["max_prob_sum"] == pytest.approx(float(max(sums))) and 0.3 < report["max_prob_sum"] < 1.0
    summary = store.summary()
    assert summary["bytes_per_record"] == round(shard_bytes / 180, 3)
    assert summary["record_bytes"] == 47 and summary["policy"] == "randaugment+mixing"
    assert (summary["num_samples"], summary["num_augs"], summary["topk"], summary["dense"]) == (60, 3, 3, False)
    assert summary["shards"] == 4 and summary["schema_version"] == SCHEMA_VERSION
    json.dumps(summary)  # JSON-able, for `drkit info --json`


def test_dense_store(digits60, digits_teacher, make_store, tmp_path):
    s = make_store(digits60, digits_teacher, tmp_path / "dense", topk=10, policy="cropflip")
    assert s.dense and "classes" not in s.record_dtype.names and s.record_dtype["probs"].shape == (10,)
    assert s.summary()["record_bytes"] == 9 + 20
    probs = np.asarray(s.records(3)["probs"], dtype=np.float32)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=5e-3)
    s.verify(digits60)


# --------------------------------------------------------------------------- the wrong dataset


def test_open_with_a_dataset_of_another_length(store, digits60):
    with pytest.raises(StoreMismatchError, match="dataset of 60 samples; this one has 59"):
        Store.open(store.root, dataset=digits60.subset(np.arange(59)))


def test_open_with_one_label_changed(store, digits60):
    labels = digits60.labels.copy()
    labels[41] = (labels[41] + 1) % 10
    other = ArrayDataset(digits60.images, labels, classes=digits60.classes)
    with pytest.raises(StoreMismatchError, match="the labels differ"):
        Store.open(store.root, dataset=other)
    with pytest.raises(StoreMismatchError, match="the labels differ"):
        store.verify(other)


def test_open_with_one_pixel_changed(store, digits60):
    images = digits60.images.copy()
    images[7, 0, 3, 5] = 255 - images[7, 0, 3, 5]
    other = ArrayDataset(images, digits60.labels, classes=digits60.classes)
    with pytest.raises(StoreMismatchError, match="the image content differ"):
        Store.open(store.root, dataset=other)


def test_open_with_another_image_shape(store):
    other = ArrayDataset(np.zeros((60, 1, 9, 8), np.uint8), np.arange(60) % 10)
    with pytest.raises(StoreMismatchError, match="image shape"):
        Store.open(store.root, dataset=other)


# --------------------------------------------------------------------------- damaged stores


def test_truncated_shard(store):
    path = store.root / "shard-00002.npy"
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - 10)
    with pytest.raises(StoreCorruptError, match=rf"shard-00002.npy is {size - 10} bytes.*truncated"):
        Store.open(store.root)


def test_missing_shard(store):
    (store.root / "shard-00001.npy").unlink()
    with pytest.raises(StoreCorruptError, match="shard shard-00001.npy is missing"):
        Store.open(store.root)


def test_bit_flip_fails_the_checksum(store, digits60):
    path = store.root / "shard-00001.npy"
    data = bytearray(path.read_bytes())
    middle = len(data) - (len(data) - 128) // 2  # inside the records, past the .npy header
    data[middle] ^= 0x10
    path.write_bytes(bytes(data))

    s = Store.open(store.root, dataset=digits60)  # sizes are right: opening succeeds
    s.record(0, 0)  # other shards still read
    with pytest.raises(StoreCorruptError, match="shard-00001.npy fails its checksum"):
        s.record(20, 1)
    with pytest.raises(StoreCorruptError, match="fails its checksum"):
        Store.open(store.root).verify()
    unchecked = Store.open(store.root, verify=False)  # opt-out reads what is there
    assert unchecked.records(20).shape == (3,)


def test_unknown_schema_version(store):
    _edit_manifest(store.root, lambda m: m.update(schema_version=99))
    with pytest.raises(StoreError, match="schema version 99 is unknown") as e:
        Store.open(store.root)
    assert not isinstance(e.value, StoreCorruptError)


def test_manifest_not_json(store):
    (store.root / MANIFEST).write_text('{"format": "drkit-store", "schema_version": 1, ')
    with pytest.raises(StoreCorruptError, match="not valid JSON"):
        Store.open(store.root)


def test_manifest_of_something_else(store):
    _edit_manifest(store.root, lambda m: m.update(format="other-tool"))
    with pytest.raises(StoreError, match="not a drkit store manifest"):
        Store.open(store.root)
    (store.root / MANIFEST).write_text("[1, 2, 3]")
    with pytest.raises(StoreError, match="not a drkit store manifest"):
        read_manifest(store.root)


def test_incomplete_manifest_says_rerun(store):
    _edit_manifest(store.root, lambda m: m.update(complete=False))
    with pytest.raises(StoreError, match="incomplete.*rerun the same `drkit reinforce` command to resume"):
        Store.open(store.root)


def test_manifest_shard_list_must_cover_the_dataset(store):
    _edit_manifest(store.root, lambda m: m.update(shards=m["shards"][:3]))
    with pytest.raises(StoreCorruptError, match="does not cover the dataset"):
        Store.open(store.root)


def test_manifest_with_an_object_dtype_is_refused(store):
    def edit(m):
        m["settings"]["record_dtype"][0] = ["crop", "|O", []]

    _edit_manifest(store.root, edit)
    with pytest.raises(StoreCorruptError, match="record_dtype is invalid"):
        Store.open(store.root)


def test_shard_with_another_dtype(store):
    """A shard whose checksum the manifest vouches for, but whose dtype is not the manifest's."""
    path = store.root / "shard-00003.npy"
    np.save(path, np.zeros((12, 3), dtype=[("x", "<u8")]), allow_pickle=False)
    import hashlib

    def edit(m):
        m["shards"][3].update(bytes=path.stat().st_size, sha256=hashlib.sha256(path.read_bytes()).hexdigest())
        m.update(seal(m))  # schema 2: the entry's own checksum vouches too

    _edit_manifest(store.root, edit)
    with pytest.raises(StoreCorruptError, match="cannot hold 12 samples"):  # its size gives it away at open
        Store.open(store.root).record(50, 0)


def test_not_a_store(tmp_path):
    with pytest.raises(StoreError, match="not a drkit store: manifest.json is missing"):
        Store.open(tmp_path)


@pytest.mark.parametrize("field,value,match", [("probs", 1.5, "probabilities outside"),
                                                ("probs", np.nan, "probabilities outside \\[0, 1\\] or not finite"),
                                                ("classes", 10, "class id >= 10")])
def test_verify_catches_bad_values_and_names_the_shard(store, field, value, match):
    """Rewrite one shard of several with a bad value (and a valid checksum): verify() still refuses
    it, and names that shard although the values are checked over all shards at once."""
    import hashlib

    assert len(store.shards) > 2
    path = store.root / "shard-00002.npy"
    arr = np.load(path, allow_pickle=False)
    arr[field][3, 1, 0] = value
    np.save(path, arr, allow_pickle=False)

    def edit(m):
        m["shards"][2].update(bytes=path.stat().st_size, sha256=hashlib.sha256(path.read_bytes()).hexdigest())
        m.update(seal(m))

    _edit_manifest(store.root, edit)
    with pytest.raises(StoreCorruptError, match=rf"shard-00002.npy: {match}"):
        Store.open(store.root).verify()

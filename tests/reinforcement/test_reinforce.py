"""The engine: byte-identical stores whatever the batch size or worker count, exact replay of what
the teacher saw, stored top-k of the teacher's output, errors that leave nothing behind."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import RecordingTeacher, tiny_teacher
from torch import nn
from torch.utils.data import Dataset

import drkit
from drkit import ConfigError, DataError, Store, StoreError, StoreMismatchError, TeacherError
from drkit.data import ArrayDataset
from drkit.reinforcement.targets import topk_sparsify

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest


def _replay(store: Store, dataset) -> torch.Tensor:
    """Every stored record replayed onto its image, in (sample, augmentation) order."""
    policy = store.policy()
    views = []
    for i in range(len(dataset)):
        for j in range(store.num_augs):
            rec = store.record(i, j)
            if policy.config.uses_mixing:
                p, pa = int(rec["partner"]), int(rec["partner_aug"])
                views.append(policy.apply(dataset.image(i), rec, dataset.image(p), store.record(p, pa)))
            else:
                views.append(policy.apply(dataset.image(i), rec))
    return torch.stack(views)


def _all_records(store: Store) -> np.ndarray:
    return np.concatenate([store.records(i)[None] for i in range(store.num_samples)]).reshape(-1)


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("policy", drkit.POLICIES)
def test_store_is_byte_identical_across_batch_size_and_workers(policy, digits60, make_store, tmp_path, snapshot):
    a = make_store(digits60, tiny_teacher(1, 10), tmp_path / "a", policy=policy, batch_size=5, num_workers=0)
    b = make_store(digits60, tiny_teacher(1, 10), tmp_path / "b", policy=policy, batch_size=64, num_workers=2)
    files_a, files_b = snapshot(a.root), snapshot(b.root)
    assert sorted(files_a) == [f"keys-{i:05d}.npy" for i in range(4)] + ["manifest.json"] + [
        f"shard-{i:05d}.npy" for i in range(4)]
    assert files_a.keys() == files_b.keys()
    for name in files_a:
        assert files_a[name] == files_b[name], name
    assert a.run_stats["records_computed"] == b.run_stats["records_computed"] == 180


def test_seed_changes_the_store(digits60, make_store, tmp_path, snapshot):
    a = make_store(digits60, tiny_teacher(1, 10), tmp_path / "a")
    b = make_store(digits60, tiny_teacher(1, 10), tmp_path / "b", seed=1)
    assert snapshot(a.root)["shard-00000.npy"] != snapshot(b.root)["shard-00000.npy"]


def test_teacher_sees_fixed_chunks_from_each_shard_start(digits60, make_store):
    rec = RecordingTeacher(tiny_teacher(1, 10))
    make_store(digits60, rec, teacher_batch=7, batch_size=10, policy="cropflip")
    sizes = [len(x) for x in rec.inputs]
    # probe (1), then per shard 48 rows = 6×7 + 6 (three shards of 16 samples), then 36 = 5×7 + 1
    assert sizes == [1] + ([7] * 6 + [6]) * 3 + [7] * 5 + [1]


# --------------------------------------------------------------------------- exact replay


@pytest.mark.parametrize("policy", drkit.POLICIES)
def test_exact_replay_digits(policy, digits60, make_store):
    teacher = RecordingTeacher(tiny_teacher(1, 10))
    store = make_store(digits60, teacher, policy=policy)
    probe, *chunks = teacher.inputs
    seen = torch.cat(chunks)
    replayed = _replay(store, digits60)
    assert seen.shape == replayed.shape == (180, 1, 8, 8) and seen.dtype == replayed.dtype == torch.float32
    assert torch.equal(seen, replayed)
    assert torch.equal(probe, replayed[:1])  # the probe is record (0, 0)
    assert len({v.numpy().tobytes() for v in replayed}) > 170  # views differ (8×8 crops can repeat)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_exact_replay_rgb_with_image_size(num_workers, rgb12, make_store):
    teacher = RecordingTeacher(tiny_teacher(3, 3))
    store = make_store(rgb12, teacher, policy="randaugment+mixing", image_size=32, shard_size=5, teacher_batch=4,
                       batch_size=7, num_workers=num_workers)
    seen = torch.cat(teacher.inputs[1:])
    replayed = _replay(store, rgb12)
    assert replayed.shape == (36, 3, 32, 32)
    assert torch.equal(seen, replayed)
    assert store.policy().size == (32, 32) and store.settings["policy"]["size"] == [32, 32]


def test_stored_params_are_the_pure_samples(digits60, make_store):
    store = make_store(digits60, tiny_teacher(1, 10), policy="randaugment+mixing")
    policy = store.policy()
    for i in (0, 31, 59):
        for j in range(3):
            want = policy.sample(0, i, j, num_samples=60, num_augs=3)
            got = store.record(i, j)
            assert all(np.array_equal(got[n], want[n]) for n in policy.param_dtype.names)


# --------------------------------------------------------------------------- stored targets


@pytest.mark.parametrize("policy", ["cropflip", "randaugment+mixing"])
def test_stored_probs_are_the_teachers_topk(policy, digits60, make_store):
    recorder = RecordingTeacher(tiny_teacher(1, 10))
    store = make_store(digits60, recorder, policy=policy)
    ensemble = drkit.TeacherEnsemble([tiny_teacher(1, 10)])
    probs = torch.cat([ensemble(x) for x in recorder.inputs[1:]])  # the same chunks: bit-identical
    values, ids = topk_sparsify(probs, 3)
    recs = _all_records(store)
    np.testing.assert_array_equal(recs["probs"], values.numpy())
    np.testing.assert_array_equal(recs["classes"], ids.numpy())
    assert recs["probs"].dtype == np.float16 and recs["classes"].dtype == np.uint8
    # the ids are the arg-top-3 of the teacher's probabilities, largest first
    assert (recs["probs"][:, :-1] >= recs["probs"][:, 1:]).all()
    np.testing.assert_array_equal(recs["classes"][:, 0], probs.argmax(-1).numpy())
    # batch composition does not matter beyond float rounding
    single = torch.cat([ensemble(x[None]) for x in recorder.inputs[1][:4]])
    torch.testing.assert_close(single, probs[:4], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("topk", [10, 25])
def test_dense_when_topk_covers_the_classes(topk, digits60, make_store):
    recorder = RecordingTeacher(tiny_teacher(1, 10))
    store = make_store(digits60, recorder, topk=topk, policy="mixing")
    assert store.dense and "classes" not in store.record_dtype.names
    assert store.topk == 10 and store.settings["topk"] == 10
    probs = torch.cat([drkit.TeacherEnsemble([tiny_teacher(1, 10)])(x) for x in recorder.inputs[1:]])
    recs = _all_records(store)
    assert recs["probs"].shape == (180, 10)
    np.testing.assert_array_equal(recs["probs"], probs.to(torch.float16).numpy())


def test_a_sharper_teacher_is_stored_as_such(digits60, make_store, tmp_path):
    """Temperature is applied before storing: T=0.25 concentrates the mass in the top-3."""
    cold = make_store(digits60, tiny_teacher(1, 10), tmp_path / "cold", temperature=0.25)
    warm = make_store(digits60, tiny_teacher(1, 10), tmp_path / "warm", temperature=4.0)

    def top3_mass(store: Store) -> float:
        return float(_all_records(store)["probs"].astype(np.float32).sum(-1).mean())

    assert top3_mass(cold) > top3_mass(warm) + 0.05
    assert cold.settings["teacher"]["temperature"] == 0.25


def test_ensemble_of_teachers(digits60, make_store):
    torch.manual_seed(5)
    other = drkit.models.SmallCNN(1, 10, width=4)
    store = make_store(digits60, [tiny_teacher(1, 10), other], policy="cropflip")
    members = store.settings["teacher"]["members"]
    assert len(members) == 2 and members[0]["weights_sha256"] != members[1]["weights_sha256"]


def test_reinforce_a_plain_torch_dataset(make_store, digits60):
    class Plain(Dataset):
        def __len__(self):
            return 20

        def __getitem__(self, i):
            return digits60.image(i).float() / 255, int(digits60.labels[i])

    store = make_store(Plain(), tiny_teacher(1, 10), policy="cropflip")
    assert store.num_samples == 20 and store.settings["dataset"]["name"] == "Plain"


# --------------------------------------------------------------------------- errors leave nothing behind


class _Wide(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.head = nn.Linear(64, width)

    def forward(self, x):
        return self.head(x.flatten(1))


class _NaNAfter(nn.Module):
    """A teacher whose ``after``-th call onwards returns NaN for the last image of the batch."""

    def __init__(self, teacher: nn.Module, after: int) -> None:
        super().__init__()
        self.teacher, self.after, self.calls = teacher, after, 0

    def forward(self, x):
        self.calls += 1
        out = self.teacher(x)
        if self.calls > self.after:
            out = out.clone()
            out[-1] = float("nan")
        return out


@pytest.fixture(params=["absent", "empty"])
def out_dir(request, tmp_path):
    """The output directory: not there yet, or there and empty."""
    out = tmp_path / "out"
    if request.param == "empty":
        out.mkdir()
    return out


def _left_behind(out) -> list[str] | None:
    return sorted(p.name for p in out.iterdir()) if out.exists() else None


def _expect_nothing_left(out, existed: bool) -> None:
    assert _left_behind(out) == ([] if existed else None)


def test_wrong_width_teacher(digits60, make_store, out_dir):
    existed = out_dir.exists()
    with pytest.raises(TeacherError, match=r"returns \(11,\) outputs per image but the dataset has 10 classes"):
        make_store(digits60, _Wide(11), out_dir)
    _expect_nothing_left(out_dir, existed)


@pytest.mark.parametrize("after", [0, 2], ids=["at-probe", "mid-shard"])
def test_nan_teacher(after, digits60, make_store, out_dir):
    existed = out_dir.exists()
    with pytest.raises(TeacherError, match="NaN/inf"):
        make_store(digits60, _NaNAfter(tiny_teacher(1, 10), after), out_dir, num_workers=0)
    _expect_nothing_left(out_dir, existed)


def test_nan_in_a_later_shard_keeps_the_finished_ones(digits60, make_store, tmp_path):
    out = tmp_path / "out"
    # probe + 6 chunks of 8 make the first shard; the 8th call is the second shard's first chunk (rows 48..55)
    with pytest.raises(TeacherError, match=r"record 55 \(sample 18, augmentation 1\)"):
        make_store(digits60, _NaNAfter(tiny_teacher(1, 10), 7), out)
    # the finished shard is kept, listed in the journal: a rerun resumes from it
    assert _left_behind(out) == ["keys-00000.npy", "manifest.journal", "manifest.json", "shard-00000.npy"]
    with pytest.raises(StoreError, match="rerun"):
        Store.open(out)


def test_empty_dataset(make_store, out_dir):
    existed = out_dir.exists()
    empty = ArrayDataset(np.zeros((0, 1, 8, 8), np.uint8), np.zeros(0), classes=[str(i) for i in range(10)])
    with pytest.raises((DataError, ConfigError), match="empty"):
        make_store(empty, tiny_teacher(1, 10), out_dir)
    _expect_nothing_left(out_dir, existed)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"topk": 0}, "topk must be a positive integer"),
        ({"topk": -2}, "topk must be a positive integer"),
        ({"num_augs": 0}, "num_augs must be a positive integer"),
        ({"num_augs": 70000}, "num_augs must be below 65536"),
        ({"shard_size": 0}, "shard_size must be a positive integer"),
        ({"seed": -1}, "seed must be non-negative"),
        ({"temperature": 0.0}, "temperature must be > 0"),
        ({"policy": "autoaugment"}, "unknown policy"),
        ({"colour": "red"}, "unknown reinforce setting"),
    ],
)
def test_bad_settings(settings, message, digits60, make_store, out_dir):
    existed = out_dir.exists()
    with pytest.raises(ConfigError, match=message):
        make_store(digits60, tiny_teacher(1, 10), out_dir, **settings)
    _expect_nothing_left(out_dir, existed)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_images_of_different_channel_counts(num_workers, make_store, tmp_path):
    """Sizes may differ in an image folder (tests/test_reinforced.py), and so may channel counts: the
    folder is read with its majority's (here gray; tests/test_image_folders_modes.py)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i, shape in enumerate([(12, 12), (12, 12), (20, 12, 3), (12, 12)]):
        (tmp_path / "src" / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(tmp_path / "src" / "ab"[i % 2] / f"{i}.png")
    out = tmp_path / "out"
    store = make_store(f"imagefolder:{tmp_path / 'src'}", tiny_teacher(1, 2), out, policy="cropflip", topk=1,
                       num_workers=num_workers)
    assert store.settings["dataset"]["image_shape"] == [1, 12, 12] and store.verify()["shards"] == 1


def test_bad_teacher_spec_writes_nothing(digits60, make_store, out_dir):
    existed = out_dir.exists()
    with pytest.raises(TeacherError, match="unknown teacher"):
        make_store(digits60, "hub:resnet", out_dir)
    _expect_nothing_left(out_dir, existed)


def test_out_is_not_an_empty_directory_or_a_store(digits60, make_store, tmp_path, snapshot):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(StoreError, match="is not empty and is not a drkit store"):
        make_store(digits60, tiny_teacher(1, 10), out)
    assert snapshot(out) == {"holiday.jpg": b"precious"}
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(StoreError, match="is not a directory"):
        make_store(digits60, tiny_teacher(1, 10), afile)
    assert afile.read_text() == "x"


# --------------------------------------------------------------------------- existing stores


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"seed": 1}, "seed"),
        ({"num_augs": 4}, "num_augs"),
        ({"topk": 2}, "topk"),
        ({"policy": "cropflip"}, "policy.name"),
        ({"shard_size": 8}, "shard_size"),
        ({"temperature": 2.0}, "teacher.temperature"),
    ],
)
def test_existing_store_with_other_settings(settings, key, digits60, make_store, snapshot):
    store = make_store(digits60, tiny_teacher(1, 10))
    before = snapshot(store.root)
    with pytest.raises(StoreMismatchError, match=rf"other settings \(.*\b{key}\b.*differ\)"):
        make_store(digits60, tiny_teacher(1, 10), **settings)
    assert snapshot(store.root) == before


def test_existing_store_with_another_teacher_or_dataset(digits60, make_store, snapshot):
    store = make_store(digits60, tiny_teacher(1, 10))
    before = snapshot(store.root)
    torch.manual_seed(1)
    with pytest.raises(StoreMismatchError, match="teacher.members"):
        make_store(digits60, drkit.models.SmallCNN(1, 10, width=4))
    with pytest.raises(StoreMismatchError, match="dataset.length"):
        make_store(digits60.subset(np.arange(50)), tiny_teacher(1, 10))
    labels = digits60.labels.copy()
    labels[0] = (labels[0] + 1) % 10
    with pytest.raises(StoreMismatchError, match="dataset.labels_sha256"):
        make_store(ArrayDataset(digits60.images, labels, classes=digits60.classes, name="digits60"),
                   tiny_teacher(1, 10))
    assert snapshot(store.root) == before


def test_rerunning_a_complete_store_is_a_noop(digits60, make_store, snapshot):
    first = make_store(digits60, tiny_teacher(1, 10))
    assert first.run_stats["records_computed"] == 180 and first.run_stats["source_bytes"] == 60 * 64
    before = snapshot(first.root)
    mtimes = {p.name: p.stat().st_mtime_ns for p in first.root.iterdir()}
    teacher, calls = tiny_teacher(1, 10), []
    teacher.register_forward_hook(lambda *args: calls.append(1))  # the same weights and description
    # a throughput knob may differ: batch size and workers are not part of the store
    again = make_store(digits60, teacher, batch_size=3, num_workers=2)
    assert again.run_stats["records_computed"] == 0
    assert calls == []  # the teacher never ran
    assert snapshot(again.root) == before
    assert {p.name: p.stat().st_mtime_ns for p in first.root.iterdir()} == mtimes


def test_manifest_records_the_run(digits60, make_store):
    store = make_store(digits60, tiny_teacher(1, 10), image_size=12)
    m = json.loads((store.root / "manifest.json").read_text())
    st = m["settings"]
    assert st["teacher"]["device_type"] == "cpu" and st["teacher"]["members"][0]["kind"] == "module"
    assert st["teacher_batch"] == 8 and st["policy"]["size"] == [12, 12]
    assert st["dataset"] == {"name": "digits60", **drkit.dataset_fingerprint(digits60)}
    assert m["drkit_version"] == drkit.__version__
    assert store.policy().size == (12, 12) and store.record(0, 0)["crop"].dtype == np.dtype("<u2")

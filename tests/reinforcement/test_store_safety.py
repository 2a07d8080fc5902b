"""A store from a stranger is safe (issue 21, points 2-5): a manifest is validated before anything
is allocated, edits that would change what is replayed are caught, every malformed manifest is
drkit's own error naming the field, and one writer at a time holds a store."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SMALL_RUN, TESTS, cli_reinforce_args, tiny_teacher
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import drkit
from benchmarks import store_fuzz as fuzz  # its cases and time limit
from drkit import Store
from drkit.cli.main import main
from drkit.errors import DrkitError, ManifestError, StoreCorruptError, StoreError, StoreLockedError
from drkit.reinforcement.config import ReinforceConfig
from drkit.reinforcement.manifest import SCHEMA_VERSION, seal
from drkit.reinforcement.plan import plan_run
from drkit.reinforcement.session import StoreSession
from drkit.reinforcement.store import MANIFEST
from drkit.reinforcement.writer import LOCK_FILE, WriterLock

pytestmark = pytest.mark.usefixtures("one_thread")


within = fuzz.time_limit  # fail (TimeoutError) instead of hanging


@pytest.fixture()
def store(digits60, digits_teacher, make_store) -> Store:
    return make_store(digits60, digits_teacher)


def _manifest(root: Path) -> dict:
    return json.loads((root / MANIFEST).read_text())


def _write(root: Path, manifest: dict) -> None:
    (root / MANIFEST).write_text(json.dumps(manifest))


def _edit(root: Path, edit) -> None:
    m = _manifest(root)
    edit(m)
    _write(root, m)


def _as_schema_1(root: Path) -> None:
    """The store as drkit 0.1.0 wrote it: no checksums of settings or entries, no sample keys."""
    def edit(m):
        m["schema_version"] = 1
        m.pop("settings_sha256")
        m["settings"].pop("sample_keys")
        for s in m["shards"]:
            s.pop("entry_sha256")
            for k in ("keys_file", "keys_bytes", "keys_sha256"):
                s.pop(k)

    _edit(root, edit)


def _cli_verify(root: Path, capsys, *extra: str) -> tuple[int, str]:
    code = main(["verify", str(root), *extra])
    return code, capsys.readouterr().err


# --------------------------------------------------------------------------- 2. no runaway allocation


@pytest.mark.parametrize("length,shard_size", [(10**29, 16), (2**32 - 1, 1)], ids=["10^29", "2^32-1 in shards of 1"])
def test_a_huge_dataset_length_fails_at_once(store, capsys, length, shard_size):
    def edit(m):
        m["settings"]["dataset"]["length"] = length
        m["settings"]["shard_size"] = shard_size

    _edit(store.root, edit)
    with within(5):
        t0 = time.perf_counter()
        with pytest.raises(ManifestError, match=r"settings\.dataset\.length|the list does not cover"):
            Store.open(store.root)
        for cmd in ("info", "verify"):
            assert main([cmd, str(store.root)]) == 1
        assert time.perf_counter() - t0 < 2
    assert "manifest is damaged" in capsys.readouterr().err


def test_a_huge_claimed_shard_is_refused_before_it_is_mapped(store):
    _edit(store.root, lambda m: m["shards"][1].update(bytes=2**49))
    with pytest.raises(ManifestError, match=r"shards\[1\]\.bytes"):
        Store.open(store.root)


# --------------------------------------------------------------------------- 3. edits that change the replay


@pytest.mark.parametrize("edit,field", [
    (lambda m: m["settings"]["policy"].update(ra_num_bins=11), "settings: they fail their checksum"),
    (lambda m: m["settings"]["policy"].update(name="cropflip"), "settings"),
    (lambda m: m["settings"]["policy"].update(size=[8, "1"]), r"settings\.policy\.size\[1\]"),
    (lambda m: m["settings"].update(seed=1), "settings: they fail their checksum"),
    (lambda m: m["settings"]["teacher"].update(temperature=2.0), "settings: they fail their checksum"),
], ids=["ra_num_bins", "policy-name", "size-str", "seed", "temperature"])
def test_settings_edits_are_caught(store, capsys, edit, field):
    _edit(store.root, edit)
    with pytest.raises(ManifestError, match=field):
        Store.open(store.root)
    code, err = _cli_verify(store.root, capsys)
    assert code == 1 and "manifest is damaged" in err and "OK" not in err


def test_swapped_shard_entries_are_caught(store):
    def swap(m):
        a, b = m["shards"][0], m["shards"][1]
        for key in ("file", "sha256"):
            a[key], b[key] = b[key], a[key]

    _edit(store.root, swap)
    with pytest.raises(ManifestError, match=r"shards\[0\]\.file: 'shard-00001.npy' is not shard 0's"):
        Store.open(store.root)


def test_swapped_shard_files_and_checksums_are_caught(store):
    """Files renamed on disk and their checksums swapped in the manifest: each entry is bound to its samples."""
    root = store.root
    (root / "shard-00000.npy").rename(root / "tmp.npy")
    (root / "shard-00001.npy").rename(root / "shard-00000.npy")
    (root / "tmp.npy").rename(root / "shard-00001.npy")

    def swap(m):
        a, b = m["shards"][0], m["shards"][1]
        for key in ("sha256", "entry_sha256"):
            a[key], b[key] = b[key], a[key]

    _edit(root, swap)
    with pytest.raises(ManifestError, match=r"shards\[0\]: the entry fails its checksum entry_sha256"):
        Store.open(root)


def test_a_schema_1_store_with_swapped_shards_fails_verify(store, digits60, capsys):
    """Without entry checksums (schema 1) the records themselves say which samples they are."""
    root = store.root
    _as_schema_1(root)
    (root / "shard-00000.npy").rename(root / "tmp.npy")
    (root / "shard-00001.npy").rename(root / "shard-00000.npy")
    (root / "tmp.npy").rename(root / "shard-00001.npy")
    _edit(root, lambda m: (m["shards"][0].update(sha256=m["shards"][1]["sha256"]),
                           m["shards"][1].update(sha256=hashlib.sha256((root / "shard-00001.npy").read_bytes())
                                                 .hexdigest())))
    opened = Store.open(root)  # checksums and sizes agree
    with pytest.raises(StoreCorruptError, match="sample 0, augmentation 0 is not the one the settings give"):
        opened.verify()  # mixing fields checked without the dataset
    with pytest.raises(StoreCorruptError, match="is not the one the settings give"):
        Store.open(root).verify(digits60)
    code, err = _cli_verify(root, capsys)
    assert code == 1 and "is not the one the settings give" in err


def test_a_schema_1_store_with_another_policy_name_is_caught(store):
    _as_schema_1(store.root)
    _edit(store.root, lambda m: m["settings"]["policy"].update(name="cropflip"))
    with pytest.raises(ManifestError, match="record_dtype is not what policy 'cropflip'"):
        Store.open(store.root)


@pytest.mark.parametrize("name", ["/etc/passwd", "../../x", "shard-00000.npy/../../x", "shard-1.npy"])
def test_shard_names_outside_the_store_pattern_are_refused(store, name):
    _edit(store.root, lambda m: m["shards"][0].update(file=name))
    with pytest.raises(ManifestError, match=r"shards\[0\]\.file"):
        Store.open(store.root)


def test_a_shard_linked_outside_the_store_is_refused(store, tmp_path):
    outside = tmp_path / "elsewhere.npy"
    (store.root / "shard-00002.npy").rename(outside)
    (store.root / "shard-00002.npy").symlink_to(outside)
    with pytest.raises(StoreCorruptError, match="outside the store"):
        Store.open(store.root)


# --------------------------------------------------------------------------- 4. malformed manifests


def _extra_shard_key(m):
    m["shards"][0]["evil"] = 1


MALFORMED = {
    "shard-extra-key": _extra_shard_key,
    "shard-not-a-dict": lambda m: m["shards"].__setitem__(0, [1, 2]),
    "no-settings": lambda m: m.pop("settings"),
    "no-dataset": lambda m: m["settings"].pop("dataset"),
    "policy-str-number": lambda m: m["settings"]["policy"].update(flip_p="0.5"),
    "policy-list-number": lambda m: m["settings"]["policy"].update(ratio=[0.75, [1]]),
    "policy-missing-field": lambda m: m["settings"]["policy"].pop("erase_p"),
    "policy-unknown-field": lambda m: m["settings"]["policy"].update(evil=1),
    "seed-inf": lambda m: m["settings"].update(seed=float("inf")),
    "seed-nan": lambda m: m["settings"].update(seed=float("nan")),
    "seed-bool": lambda m: m["settings"].update(seed=True),
    "seed-negative": lambda m: m["settings"].update(seed=-1),
    "num-augs-zero": lambda m: m["settings"].update(num_augs=0),
    "topk-huge": lambda m: m["settings"].update(topk=10**6),
    "image-shape-short": lambda m: m["settings"]["dataset"].update(image_shape=[8, 8]),
    "record-dtype-garbage": lambda m: m["settings"].update(record_dtype=[["a", "b"]]),
    "record-dtype-huge": lambda m: m["settings"]["record_dtype"][-1].__setitem__(2, [2**40]),
    "record-dtype-syntax": lambda m: m["settings"]["record_dtype"][1].__setitem__(1, "|01"),  # numpy: SyntaxError
    "teacher-no-members": lambda m: m["settings"]["teacher"].pop("members"),
    "complete-str": lambda m: m.update(complete="yes"),
    "shards-dict": lambda m: m.update(shards={}),
    "shard-index-float": lambda m: m["shards"][0].update(index=0.0),
    "shard-sha-short": lambda m: m["shards"][0].update(sha256="abc"),
    "shards-duplicated": lambda m: m["shards"].__setitem__(1, copy.deepcopy(m["shards"][0])),
    "schema-str": lambda m: m.update(schema_version="2"),
    "checksum-missing": lambda m: m.pop("settings_sha256"),
}


@pytest.mark.parametrize("edit", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_manifests_are_drkits_errors(store, edit):
    _edit(store.root, edit)
    with within(5), pytest.raises(DrkitError) as e:
        Store.open(store.root).verify()
    assert isinstance(e.value, StoreError)
    assert "manifest" in str(e.value) or "schema version" in str(e.value)


@pytest.mark.parametrize("text", [
    '{"format": "drkit-store", "schema_version": 2, "a": ' + "[" * 100_000 + "]" * 100_000 + "}",
    '{"format": "drkit-store", "schema_version": 2, "a": ' + "9" * 100_000 + "}",
    '{"format": "drkit-store", "format": "drkit-store", "schema_version": 2}',
    "\xff\xfe not utf-8",
], ids=["deep", "long-int", "duplicate-key", "not-utf8"])
def test_unparseable_manifests_are_corrupt_errors(store, text):
    (store.root / MANIFEST).write_bytes(text.encode("latin-1"))
    with within(5), pytest.raises(StoreCorruptError, match="is not valid JSON"):
        Store.open(store.root)


def test_schema_1_stores_still_open(store, digits60):
    """Stores written by drkit 0.1.0 (schema 1) open and replay as before, with the new checks."""
    before = {i: store.records(i).tobytes() for i in range(60)}
    _as_schema_1(store.root)
    old = Store.open(store.root, dataset=digits60)
    assert old.manifest["schema_version"] == 1 and SCHEMA_VERSION == 3 and not old.has_sample_keys
    assert {i: old.records(i).tobytes() for i in range(60)} == before
    assert old.verify(digits60)["shards"] == 4


def test_an_interrupted_schema_1_store_resumes_as_schema_3(digits60, make_store, tmp_path, snapshot):
    reference = make_store(digits60, tiny_teacher(1, 10), tmp_path / "reference")
    out = tmp_path / "old"
    make_store(digits60, tiny_teacher(1, 10), out)
    _as_schema_1(out)
    _edit(out, lambda m: m.update(complete=False, shards=m["shards"][:2]))  # drkit 0.1.0, interrupted
    (out / "shard-00002.npy").unlink()
    (out / "shard-00003.npy").unlink()
    resumed = make_store(digits60, tiny_teacher(1, 10), out)
    assert resumed.run_stats["records_computed"] == 28 * 3
    assert snapshot(out) == snapshot(reference.root)  # sealed as schema 3 with sample keys, byte for byte


def test_the_written_manifest_is_sealed(store):
    m = _manifest(store.root)
    assert m["schema_version"] == SCHEMA_VERSION and len(m["settings_sha256"]) == 64
    assert all(len(s["entry_sha256"]) == 64 for s in m["shards"])
    assert seal(m) == m  # sealing is idempotent: the checksums are those of what is written


# --------------------------------------------------------------------------- fuzz (benchmarks/store_fuzz.py)

class DrawChooser:
    """benchmarks/store_fuzz.py's random choices, drawn by hypothesis (so failures shrink)."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def integer(self, lo: int, hi: int) -> int:
        return self.data.draw(st.integers(lo, hi))

    def choice(self, options):
        return self.data.draw(st.sampled_from(list(options)))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return fuzz.make_pristine(tmp_path_factory.mktemp("fuzz"))


@settings(max_examples=100, deadline=5000, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data(), name=st.sampled_from(sorted(fuzz.STORES)), resealed=st.booleans())
def test_fuzzed_stores_end_in_drkits_error_or_identical_data(pristine, tmp_path_factory, data, name, resealed):
    """Manifest fields, manifest bytes and shard files, mutated: drkit's error or the same replay —
    never another exception, a hang (10 s), or different data that verifies (resealed manifests may
    change the replay consistently: they are not damage)."""
    root, digest = pristine[name]
    work = tmp_path_factory.getbasetemp() / "fuzz-work" / "store"
    work.parent.mkdir(exist_ok=True)
    outcome, detail, mutations = fuzz.run_case(root, work, DrawChooser(data), fuzz.digits60(), digest, 10.0,
                                               resealed=resealed)
    allowed = {"error", "identical"} | ({"consistent_change"} if resealed else set())
    assert outcome in allowed, f"{outcome}: {detail} after {mutations}"


# --------------------------------------------------------------------------- 5. one writer per store


def _plan(dataset, out):
    config = ReinforceConfig(**SMALL_RUN, device="cpu")
    return plan_run(dataset, tiny_teacher(1, 10), out, config, device=torch.device("cpu"))


def test_a_second_writer_is_refused_and_removes_nothing(digits60, tmp_path):
    out = tmp_path / "out"
    plan = _plan(digits60, out)
    first = StoreSession(plan)
    first.add(0, 0, np.zeros((16, 3), plan.dtype))
    before = sorted(p.name for p in out.iterdir())
    assert (out / LOCK_FILE).read_text().split()[0] == str(os.getpid())
    with pytest.raises(StoreLockedError, match=rf"{out} is in use by PID {os.getpid()}"):
        StoreSession(_plan(digits60, out))
    assert sorted(p.name for p in out.iterdir()) == before  # the loser touched nothing
    first.abort()
    # the lock gone; the shard kept, listed in the journal for a resume
    assert sorted(p.name for p in out.iterdir()) == ["keys-00000.npy", "manifest.journal", "manifest.json",
                                                     "shard-00000.npy"]


def test_abort_removes_only_what_its_run_created(digits60, tmp_path):
    out = tmp_path / "out"
    session = StoreSession(_plan(digits60, out))
    (out / "notes.txt").write_text("someone else's")  # appears while the run goes
    session.abort()
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]

    fresh = tmp_path / "fresh"
    StoreSession(_plan(digits60, fresh)).abort()
    assert not fresh.exists()  # created by the run, empty again: removed


def test_the_lock_is_taken_again_after_release(tmp_path):
    lock = WriterLock(tmp_path)
    assert lock.held and (tmp_path / LOCK_FILE).exists()
    lock.release()
    lock.release()  # idempotent
    assert not (tmp_path / LOCK_FILE).exists()
    again = WriterLock(tmp_path)
    again.release()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_keep_a_dead_writers_lock(tmp_path):
    """The writer's DataLoader workers are forked children: when the writer dies (simulated by closing
    its descriptor without releasing), the store is free at once, though a child still runs."""
    lock = WriterLock(tmp_path)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: says it runs (past the fork hooks), outlives the writer's descriptor, leaves
        os.write(ready_w, b"1")
        time.sleep(3)
        os._exit(0)
    os.read(ready_r, 1)
    os.close(ready_r)
    os.close(ready_w)
    try:
        os.close(lock._fd)  # the writer "dies": the kernel closes its descriptors, nothing is unlinked
        lock._fd = None
        again = WriterLock(tmp_path)  # refused while the child held a copy of the descriptor
        again.release()
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)


def test_reinforce_refuses_a_store_another_process_writes(digits60, make_store, tmp_path):
    out = tmp_path / "out"
    make_store(digits60, tiny_teacher(1, 10), out)
    _edit(out, lambda m: m.update(complete=False, shards=m["shards"][:2]))  # an interrupted run, being resumed
    before = sorted(p.name for p in out.iterdir())
    code = ("import sys, time; from drkit.reinforcement.writer import WriterLock; WriterLock(sys.argv[1]); "
            "print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLockedError, match=rf"in use by PID {holder.pid}"):
            drkit.reinforce(digits60, tiny_teacher(1, 10), out, progress=False, **SMALL_RUN)
        assert sorted(p.name for p in out.iterdir()) == sorted([*before, LOCK_FILE])  # nothing removed or written
    finally:
        holder.kill()
        holder.wait()
    store = drkit.reinforce(digits60, tiny_teacher(1, 10), out, progress=False, **SMALL_RUN)  # the lock died with it
    assert store.verify(digits60)["shards"] == 4 and not (out / LOCK_FILE).exists()


@pytest.mark.slow
def test_two_cli_writers_on_one_out(tmp_path):
    """Two `drkit reinforce` processes on one --out: the second fails with the first's PID, the
    first completes a valid store, nothing is deleted. The first is held mid-store (its teacher
    waits for a gate file) until the second has failed."""
    ds = drkit.load_dataset("digits").subset(np.arange(160))
    data = tmp_path / "d.npz"
    np.savez(data, x=ds.images[:, 0], y=ds.labels)
    out, gate = tmp_path / "out", tmp_path / "gate"
    env = {**os.environ, "DRKIT_TEST_GATE": str(gate),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
    args = [sys.executable, "-m", "drkit.cli", *cli_reinforce_args(f"npz:{data}", out)]
    args[args.index("python:_cli_teachers:slow")] = "python:_gated_teacher:gated"
    first = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / LOCK_FILE).exists() and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.01)
        second = subprocess.run(args, env=env, stderr=subprocess.PIPE, text=True, timeout=120)
        assert second.returncode == 1 and f"in use by PID {first.pid}" in second.stderr, second.stderr
        assert (out / MANIFEST).is_file()  # the loser removed nothing
        gate.touch()
        assert first.wait(timeout=300) == 0, first.stderr.read()
    finally:
        gate.touch()
        if first.poll() is None:
            first.kill()
    store = Store.open(out)
    assert store.verify(ds)["shards"] == 10 and not (out / LOCK_FILE).exists()

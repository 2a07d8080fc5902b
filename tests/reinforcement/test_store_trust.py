"""A store is data, not code (issue 21, point 1): the teachers its manifest names are never loaded
by KD, audit or eval unless the user names them again or passes --trust-store-teachers."""

import pytest

import drkit
from drkit.cli.main import main


@pytest.fixture()
def code_store(tmp_path, monkeypatch):
    """A store whose manifest records a ``python:`` teacher; building that teacher writes a marker."""
    marker = tmp_path / "ran"
    monkeypatch.setenv("DRKIT_TEST_MARKER", str(marker))
    data = drkit.load_dataset("digits").subset(range(40), name="digits40")
    store = drkit.reinforce(data, "python:_marker_teacher:build", tmp_path / "s", num_augs=1, policy="cropflip",
                            progress=False)
    assert marker.exists()  # the user named it when reinforcing: it ran then
    marker.unlink()
    return data, store, marker, tmp_path


def test_kd_audit_and_eval_never_run_a_stores_code_unasked(code_store, capsys):
    data, store, marker, tmp = code_store
    np_path = tmp / "d.npz"
    import numpy as np

    np.savez(np_path, x=data.images[:, 0], y=data.labels)
    args_kd = ["train", f"npz:{np_path}", "--mode", "kd", "--store", str(store.root), "--arch", "smallcnn-4",
               "--epochs", "1", "--out", str(tmp / "kd"), "-q"]
    assert main(args_kd) == 1
    err = capsys.readouterr().err
    assert "python:_marker_teacher:build would run code" in err and "--trust-store-teachers" in err
    assert main(["train", f"npz:{np_path}", "--mode", "erm", "--arch", "smallcnn-4", "--epochs", "1",
                 "--eval-data", f"npz:{np_path}", "--out", str(tmp / "erm"), "-q"]) == 0
    assert main(["eval", str(tmp / "erm"), "--store", str(store.root), "--no-corruptions", "--no-shifts"]) == 1
    assert main(["audit", str(store.root), "--data", f"npz:{np_path}", "--source", "teacher"]) == 1
    assert main(["verify", str(store.root)]) == 0  # verifying reads data only
    assert not marker.exists()  # nothing of the store's ran
    # named again by the user, or trusted explicitly: then it runs
    assert main(["eval", str(tmp / "erm"), "--store", str(store.root), "--no-corruptions", "--no-shifts",
                 "--trust-store-teachers"]) == 0
    assert marker.exists()


def test_out_is_checked_before_data_or_teachers_load(tmp_path, monkeypatch):
    """Issue 21, point 8: an unwritable or misplaced --out fails at once with drkit's own error."""
    import drkit.reinforcement.plan as r  # where plan_run loads the data

    loaded = []
    monkeypatch.setattr(r, "load_dataset", lambda *a, **k: loaded.append(a) or (_ for _ in ()).throw(AssertionError))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        import os

        if os.access(locked, os.W_OK):  # root ignores permissions: use a path under a file instead
            (tmp_path / "file").write_text("x")
            bad = tmp_path / "file" / "store"
        else:
            bad = locked / "store"
        with pytest.raises(drkit.StoreError, match="--out"):
            drkit.reinforce("digits", "run:/nowhere", bad)
        folder = tmp_path / "images"
        (folder / "a").mkdir(parents=True)
        with pytest.raises(drkit.StoreError, match="inside the image folder"):
            drkit.reinforce(f"imagefolder:{folder}", "run:/nowhere", folder / "store")
    finally:
        locked.chmod(0o700)
    assert loaded == []

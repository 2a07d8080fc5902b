"""The image-folder cache: a reopened folder decodes nothing, a changed file is read again and still
changes the fingerprint, a damaged or unwritable cache is rebuilt or skipped, never trusted."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
from _image_folders import mixed_size_folder
from PIL import Image

from drkit.data import ImageFolderDataset, dataset_fingerprint, decode, folders


@pytest.fixture()
def decodes(monkeypatch, tmp_path):
    """Counts file decodes (the scan's and read_image's); the cache lives in tmp_path/cache."""
    monkeypatch.setenv("DRKIT_CACHE", str(tmp_path / "cache"))
    calls: list[str] = []
    real = decode.decode_file

    def counting(path):
        calls.append(path.name)
        return real(path)

    monkeypatch.setattr(decode, "decode_file", counting)
    monkeypatch.setattr(folders, "decode_file", counting)
    return calls


def _open(root):
    ds = ImageFolderDataset(root, skip_bad_files=True)
    return ds, dataset_fingerprint(ds)


def test_a_reopened_folder_is_served_from_the_cache(tmp_path, decodes):
    root = mixed_size_folder(tmp_path / "images", n=12)
    ds, fp = _open(root)
    assert len(decodes) == 24  # the scan and the fingerprint each decode every file once
    assert not list(root.rglob("*.json"))  # nothing written into the image folder
    decodes.clear()
    ds2, fp2 = _open(root)
    assert decodes == [] and fp2 == fp and ds2.channels == ds.channels and ds2.files == ds.files


def test_a_changed_file_is_read_again_and_changes_the_fingerprint(tmp_path, decodes):
    root = mixed_size_folder(tmp_path / "images", n=12)
    _, fp = _open(root)
    target = sorted(root.rglob("*.png"))[3]
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # touched: same bytes, new mtime
    decodes.clear()
    _, fp_touched = _open(root)
    assert decodes.count(target.name) == 2 and len(decodes) == 1 + 12  # its scan, then the whole hash
    assert fp_touched == fp  # same bytes: same content hash
    with Image.open(target) as im:  # rewritten in place (same inode, same size), the mtime put back
        arr = 255 - np.asarray(im)
    Image.fromarray(arr).save(target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    decodes.clear()
    _, fp_replaced = _open(root)
    assert target.name in decodes and fp_replaced["content_sha256"] != fp["content_sha256"]


def test_a_bad_file_stays_caught_from_the_cache_and_a_fixed_one_is_taken(tmp_path, decodes):
    root = mixed_size_folder(tmp_path / "images", n=6)
    bad = root / "c0" / "broken.png"
    bad.write_bytes(b"not a png")
    ds, _ = _open(root)
    decodes.clear()
    ds2, _ = _open(root)
    assert decodes == [] and [p.name for p, _ in ds2.skipped] == ["broken.png"] and len(ds2) == 6
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(bad, format="PNG")
    ds3, _ = _open(root)
    assert ds3.skipped == [] and len(ds3) == 7


def test_a_damaged_cache_is_ignored_logged_and_rebuilt(tmp_path, decodes, caplog):
    root = mixed_size_folder(tmp_path / "images", n=6)
    ds, fp = _open(root)
    path = ds.cache.path
    for damage in ("{not json", json.dumps({"version": 1, "root": str(root.resolve()), "files": {"c0/0.png": [1]},
                                            "fingerprints": {}})):
        path.write_text(damage)
        decodes.clear()
        with caplog.at_level(logging.WARNING, logger="drkit.data.folders"):
            _, fp2 = _open(root)
        assert "damaged folder cache" in caplog.text and len(decodes) == 12 and fp2 == fp
        caplog.clear()
        assert json.loads(path.read_text())["version"] == 1  # rebuilt


def test_an_unwritable_cache_folder_is_only_logged(tmp_path, monkeypatch, caplog):
    root = mixed_size_folder(tmp_path / "images", n=4)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("DRKIT_CACHE", str(blocker))  # a file where the cache folder would be
    with caplog.at_level(logging.WARNING, logger="drkit.data.folders"):
        ds, fp = _open(root)
    assert len(ds) == 4 and "cannot write the folder cache" in caplog.text

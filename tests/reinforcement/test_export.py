"""Sharing a store (issue 23, point 6): ``drkit export`` writes a folder ready for a Hugging Face
dataset repository (the store's files + a dataset card), which opens against another copy of the
data; pushing is refused clearly when offline or without a token (no test touches the network)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from _image_folders import mixed_size_folder
from conftest import tiny_teacher

import drkit
from drkit.cli.main import main
from drkit.data import ImageFolderDataset
from drkit.errors import ConfigError, StoreCorruptError, StoreError
from drkit.reinforcement.export import CARD, export_store, push_folder
from drkit.reinforcement.store import Store
from drkit.training.loop import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")

RUN = {"policy": "randaugment+mixing", "num_augs": 3, "topk": 2, "image_size": 16, "shard_size": 5,
       "teacher_batch": 5, "batch_size": 8, "num_workers": 0, "progress": False}


@pytest.fixture()
def made(tmp_path):
    folder = mixed_size_folder(tmp_path / "data", n=12)
    store = drkit.reinforce(ImageFolderDataset(folder), tiny_teacher(3, 3), tmp_path / "store", **RUN)
    return folder, store


def _card(path: Path) -> tuple[dict, str]:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    front, _, body = text[4:].partition("\n---\n")
    return yaml.safe_load(front), body


def test_export_writes_the_store_and_its_card(made, tmp_path, capsys):
    folder, store = made
    out = tmp_path / "export"
    code = main(["export", str(store.root), "--out", str(out), "--repo-id", "me/folder-plus", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["pushed"] is False and report["url"] is None
    stored = sorted(p.name for p in store.root.iterdir())
    assert sorted(p.name for p in out.iterdir()) == sorted([*stored, CARD]) == report["files"]
    for name in stored:
        assert (out / name).read_bytes() == (store.root / name).read_bytes()

    meta, body = _card(out / CARD)
    info, d = meta["drkit"], store.settings["dataset"]
    assert meta["task_categories"] == ["image-classification"] and meta["size_categories"] == ["n<1K"]
    assert meta["viewer"] is False and "drkit" in meta["tags"]
    assert info["source_dataset"] == d and info["repo_id"] == "me/folder-plus"
    assert info["teachers"] == [m.get("spec", m.get("class")) for m in store.settings["teacher"]["members"]]
    assert (info["policy"], info["num_samples"], info["num_augs"], info["topk"]) == ("randaugment+mixing", 12, 3, 2)
    assert info["bytes"] == store.nbytes() and info["shards"] == 3
    assert info["sample_keys"] == {"scheme": "relative-path", "hash": store.settings["sample_keys"]["hash"]}
    assert "hf download me/folder-plus --repo-type dataset --local-dir store" in body
    assert f"`{d['name']}`" in body and d["labels_sha256"][:16] in body and "relative-path" in body


def test_an_exported_store_opens_against_another_copy_of_the_data(made, tmp_path):
    folder, store = made
    out = export_store(store.root, tmp_path / "export")
    shutil.copytree(folder, tmp_path / "elsewhere")
    mine = ImageFolderDataset(tmp_path / "elsewhere")
    order = np.arange(len(mine))[::-1].tolist()  # listed in another order
    mine.files, mine.labels = [mine.files[i] for i in order], mine.labels[order]
    theirs = drkit.ReinforcedDataset(ImageFolderDataset(folder), store)
    ds = drkit.ReinforcedDataset(mine, Store.open(out))
    assert ds.match.by == "key" and len(ds) == 12
    for t in range(len(ds)):
        for j in range(3):
            assert np.array_equal(ds.replay(t, j).numpy(), theirs.replay(ds.row(t), j).numpy())
    assert Store.open(out).verify(mine)["match"]["complete"]
    run = drkit.train_run(mine, tmp_path / "run", store=out, mode="dr", arch="smallcnn-4", progress=False,
                          config=TrainConfig(epochs=1, batch_size=6, num_workers=0))
    assert run["config"]["train_samples"] == 12 and len(run["epochs"]) == 1


def test_export_refuses_a_damaged_store_and_a_used_folder(made, tmp_path, capsys):
    _, store = made
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("mine")
    with pytest.raises(StoreError, match="not an empty directory"):
        export_store(store.root, tmp_path / "used")
    with pytest.raises(StoreError, match="inside the store"):
        export_store(store.root, store.root / "export")
    data = bytearray((store.root / "keys-00001.npy").read_bytes())
    data[-1] ^= 1
    (store.root / "keys-00001.npy").write_bytes(bytes(data))
    with pytest.raises(StoreCorruptError, match="keys-00001.npy fails its checksum"):
        export_store(store.root, tmp_path / "export")
    assert not (tmp_path / "export").exists()  # nothing published from a damaged store
    assert main(["export", str(store.root), "--out", str(tmp_path / "e2"), "--push"]) == 1
    assert "--push needs --repo-id" in capsys.readouterr().err


def test_push_is_refused_offline_or_without_a_token(made, tmp_path, monkeypatch):
    hub = pytest.importorskip("huggingface_hub")
    out = export_store(made[1].root, tmp_path / "export")
    with pytest.raises(ConfigError, match="ORG/NAME"):
        push_folder(out, "no-slash")
    with pytest.raises(StoreError, match="not an exported store"):
        push_folder(made[1].root, "me/x")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE"):
        push_folder(out, "me/x")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hub, "get_token", lambda: None)
    with pytest.raises(ConfigError, match="no Hugging Face token"):
        push_folder(out, "me/x")


def test_push_creates_a_dataset_repo_and_uploads_the_folder(made, tmp_path, monkeypatch):
    """The calls made to huggingface_hub (a recording stand-in for HfApi: no network in tests)."""
    hub = pytest.importorskip("huggingface_hub")
    calls = []

    class Api:
        def __init__(self, token):
            calls.append(("token", token))

        def create_repo(self, repo_id, **kw):
            calls.append(("create_repo", repo_id, kw))

        def upload_folder(self, **kw):
            calls.append(("upload_folder", kw))
            return type("Commit", (), {"commit_url": "https://huggingface.co/datasets/me/x/commit/abc"})()

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "HfApi", Api)
    out = export_store(made[1].root, tmp_path / "export")
    assert push_folder(out, "me/x", private=True, token="t0k") == "https://huggingface.co/datasets/me/x/commit/abc"
    assert calls[0] == ("token", "t0k")
    assert calls[1] == ("create_repo", "me/x", {"repo_type": "dataset", "private": True, "exist_ok": True})
    assert calls[2][1]["folder_path"] == str(out) and calls[2][1]["repo_type"] == "dataset"

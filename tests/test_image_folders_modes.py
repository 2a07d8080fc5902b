"""Image folders of mixed modes (issue 21, point 6): one channel count for every image (gray <->
RGB, alpha composited onto white, 16-bit scaled to 8 bit), every unreadable file named in one
error (or left out with ``skip_bad_files``), and `eval` reads them as `reinforce` does."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_teacher
from PIL import Image

import drkit
from drkit.data import (
    ImageFolderDataset,
    TorchDatasetAdapter,
    load_dataset,
    read_image,
    to_uint8_channels,
)
from drkit.errors import DataError
from drkit.evaluate.evaluation import evaluate_model

pytestmark = pytest.mark.usefixtures("one_thread")
RUN = {"policy": "cropflip", "num_augs": 2, "topk": 2, "shard_size": 8, "teacher_batch": 8, "batch_size": 8,
       "num_workers": 0}


def _rng_image(rng, shape) -> np.ndarray:
    return rng.integers(0, 256, shape, dtype=np.uint8)


def mixed_mode_folder(root: Path) -> Path:
    """Per class: a gray PNG, an RGB JPEG, an RGBA PNG (half transparent), a 16-bit gray PNG, a gray BMP."""
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        d = root / c
        d.mkdir(parents=True)
        Image.fromarray(_rng_image(rng, (12, 14))).save(d / "gray.png")
        Image.fromarray(_rng_image(rng, (12, 14, 3))).save(d / "rgb.jpg", quality=95)
        rgba = _rng_image(rng, (12, 14, 4))
        rgba[:6, :, 3] = 0
        Image.fromarray(rgba, "RGBA").save(d / "rgba.png")
        Image.fromarray(_rng_image(rng, (12, 14)).astype(np.uint16) * 257).save(d / "gray16.png")
        Image.fromarray(_rng_image(rng, (12, 14))).save(d / "gray.bmp")
    return root


def twin_folders(root: Path, n: int = 8) -> tuple[Path, Path]:
    """The same gray images as 8-bit and as 16-bit PNGs (v * 257: exactly v in 8 bit)."""
    rng = np.random.default_rng(1)
    for k in range(n):
        img = _rng_image(rng, (10, 10))
        for sub, pixels in (("p8", img), ("p16", img.astype(np.uint16) * 257)):
            (root / sub / f"c{k % 2}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / sub / f"c{k % 2}" / f"{k}.png")
    return root / "p8", root / "p16"


def test_a_mixed_folder_reads_as_one_channel_count(tmp_path):
    root = mixed_mode_folder(tmp_path)
    ds = ImageFolderDataset(root)
    assert ds.channels == 1 and len(ds) == 10  # 6 gray sources of 10: gray by majority
    assert {tuple(ds.image(i).shape) for i in range(len(ds))} == {(1, 12, 14)}
    assert all(ds.image(i).dtype == torch.uint8 for i in range(len(ds)))
    rgb = ImageFolderDataset(root, channels=3)
    assert {tuple(rgb.image(i).shape) for i in range(len(rgb))} == {(3, 12, 14)}
    gray = np.asarray(Image.open(root / "a" / "gray.png"))
    index = [f.name for f in rgb.files].index("gray.png")
    np.testing.assert_array_equal(rgb.image(index).numpy(), np.stack([gray] * 3))  # gray -> RGB repeats


def test_a_mixed_folder_reinforces_and_verifies(tmp_path):
    root = mixed_mode_folder(tmp_path / "data")
    for channels in (1, 3):
        ds = ImageFolderDataset(root, channels=channels)
        store = drkit.reinforce(ds, tiny_teacher(channels, 2), tmp_path / f"s{channels}", progress=False, **RUN)
        assert store.verify(ds)["shards"] == 2
        train = drkit.ReinforcedDataset(ds, store)
        assert train[3][0].shape[0] == channels


def test_rgba_is_composited_on_white(tmp_path):
    (tmp_path / "a").mkdir()
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., :3] = (200, 100, 0)
    rgba[0, :, 3] = 0  # transparent: white
    rgba[1, 0, 3] = 255  # opaque: the colour
    rgba[1, 1:, 3] = 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a" / "x.png")
    img = ImageFolderDataset(tmp_path).image(0).permute(1, 2, 0).numpy()
    assert (img[0] == 255).all()
    assert img[1, 0].tolist() == [200, 100, 0]
    assert img[1, 1].tolist() == [(200 * 128 + 255 * 127 + 127) // 255, (100 * 128 + 255 * 127 + 127) // 255, 127]


def test_16_bit_images_read_as_their_8_bit_twins(tmp_path):
    p8, p16 = twin_folders(tmp_path)
    a, b = ImageFolderDataset(p8), ImageFolderDataset(p16)
    for i in range(len(a)):
        assert b.image(i).dtype == torch.uint8 and torch.equal(a.image(i), b.image(i))
    store = drkit.reinforce(b, tiny_teacher(1, 2), tmp_path / "s", progress=False, **RUN)
    assert store.verify(a)["dataset_checked"]  # the same dataset, as far as the store can tell


def test_eval_reads_16_bit_images_as_reinforce_does(tmp_path):
    p8, p16 = twin_folders(tmp_path)
    model = tiny_teacher(1, 2)
    kw = {"corruptions": False, "shifts": False, "device": "cpu"}
    m8 = evaluate_model(model, f"imagefolder:{p8}", **kw)["metrics"]
    m16 = evaluate_model(model, f"imagefolder:{p16}", **kw)["metrics"]
    assert m16 == m8


def test_every_bad_file_is_named_in_one_error(tmp_path):
    root = mixed_mode_folder(tmp_path)
    (root / "a" / "zero.png").write_bytes(b"")
    good = (root / "a" / "gray.png").read_bytes()
    (root / "a" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "b" / "text.jpg").write_text("not an image")
    with pytest.raises(DataError) as e:
        load_dataset(f"imagefolder:{root}")
    message = str(e.value)
    assert "3 of 13 files" in message and "skip_bad_files" in message
    for name, why in (("zero.png", "empty file"), ("truncated.png", "truncated"), ("text.jpg", "")):
        line = next(ln for ln in message.splitlines() if ln.strip().startswith(str(root)) and name in ln)
        assert why in line
    assert "Traceback" not in message and ".cpp" not in message


def test_skip_bad_files_lists_them(tmp_path, caplog):
    root = mixed_mode_folder(tmp_path)
    (root / "b" / "zero.png").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="drkit.data"):
        ds = load_dataset(f"imagefolder:{root}?skip_bad_files=1&channels=3")
    assert len(ds) == 10 and ds.channels == 3
    assert [(p.name, why) for p, why in ds.skipped] == [("zero.png", "empty file (0 bytes)")]
    assert "zero.png" in caplog.text and "1 unreadable files left out" in caplog.text
    with pytest.raises(DataError, match="unknown option"):
        load_dataset(f"imagefolder:{root}?channels=2")


def test_a_file_broken_after_the_scan_names_itself(tmp_path):
    root = mixed_mode_folder(tmp_path)
    ds = ImageFolderDataset(root)
    ds.files[0].write_bytes(b"")
    with pytest.raises(DataError, match=rf"cannot decode image {ds.files[0]}: empty file"):
        ds.image(0)


def test_to_uint8_channels_rules():
    gray16 = torch.tensor([[[0, 257, 65535, 32896]]], dtype=torch.uint16)
    assert to_uint8_channels(gray16).tolist() == [[[0, 1, 255, 128]]]
    rgb = torch.tensor([[[255]], [[0]], [[0]]], dtype=torch.uint8)
    pil_l = np.asarray(Image.fromarray(np.array([[[255, 0, 0]]], np.uint8)).convert("L"))
    assert to_uint8_channels(rgb, 1).item() == int(pil_l[0, 0])  # luma as PIL computes it
    la = torch.tensor([[[10]], [[0]]], dtype=torch.uint8)
    assert to_uint8_channels(la, 3).flatten().tolist() == [255, 255, 255]
    with pytest.raises(DataError, match="channels must be 1"):
        to_uint8_channels(rgb, 2)


def test_wrapped_pil_datasets_follow_the_same_rules():
    rgba = np.zeros((4, 4, 4), np.uint8)
    gray16 = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 257 * 16)

    class Pils(torch.utils.data.Dataset):
        targets = [0, 1]

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return (Image.fromarray(rgba, "RGBA") if i == 0 else Image.fromarray(gray16)), self.targets[i]

    ds = TorchDatasetAdapter(Pils())
    assert (ds.image(0) == 255).all() and ds.image(0).shape == (3, 4, 4)  # transparent black is white
    assert ds.image(1).dtype == torch.uint8 and ds.image(1).flatten().tolist() == [v * 16 for v in range(16)]


def test_read_image_is_what_the_folder_returns(tmp_path):
    root = mixed_mode_folder(tmp_path)
    ds = ImageFolderDataset(root, channels=3)
    for i, f in enumerate(ds.files):
        assert torch.equal(ds.image(i), read_image(f, 3))

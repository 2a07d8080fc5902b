"""Policies: records are pure functions of their coordinates and replay bit-exactly, for every
policy, grayscale and RGB, square and not (property-based); configuration errors are clear."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import drkit
from drkit import ConfigError, Policy, PolicyConfig
from drkit.augment.ops import LAMBDA_SCALE, RANDAUGMENT_OPS

PROPERTY = settings(max_examples=25, deadline=None, derandomize=True)


@st.composite
def _cases(draw: st.DrawFn) -> dict:
    rgb = draw(st.booleans())
    lo, hi = (8, 64) if rgb else (8, 40)
    h, w = draw(st.integers(lo, hi)), draw(st.integers(lo, hi))
    size = draw(st.one_of(st.none(), st.tuples(st.integers(8, 48), st.integers(8, 48))))
    num_samples = draw(st.integers(1, 5000))
    num_augs = draw(st.integers(1, 64))
    return {
        "shape": (3 if rgb else 1, h, w),
        "size": size,
        "seed": draw(st.integers(0, 2**32)),
        "index": draw(st.integers(0, num_samples - 1)),
        "aug": draw(st.integers(0, num_augs - 1)),
        "num_samples": num_samples,
        "num_augs": num_augs,
        "pixels_seed": draw(st.integers(0, 2**16)),
    }


def _images(shape: tuple[int, int, int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, shape, dtype=torch.uint8, generator=g),
            torch.randint(0, 256, shape, dtype=torch.uint8, generator=g))


def _check_record(policy: Policy, rec: np.ndarray, case: dict) -> None:
    c, h, w = case["shape"]
    oh, ow = policy.size
    top, left, ch, cw = (int(v) for v in rec["crop"])
    assert ch > 0 and cw > 0 and top + ch <= h and left + cw <= w
    assert int(rec["flip"]) in (0, 1)
    if policy.config.uses_randaugment:
        assert ((0 <= rec["ra_op"]) & (rec["ra_op"] < len(RANDAUGMENT_OPS))).all()
        assert (np.abs(rec["ra_mag"].astype(int)) < policy.config.ra_num_bins).all()
        et, el, eh, ew = (int(v) for v in rec["erase"])
        assert et + eh <= oh and el + ew <= ow
    if policy.config.uses_mixing:
        assert 0 <= int(rec["partner"]) < case["num_samples"]
        if case["num_samples"] > 1:
            assert int(rec["partner"]) != case["index"]
        assert 0 <= int(rec["partner_aug"]) < case["num_augs"]
        assert int(rec["mix_mode"]) in (0, 1)
        assert 0 <= int(rec["mix_lam"]) <= LAMBDA_SCALE
        y1, x1, y2, x2 = (int(v) for v in rec["mix_box"])
        if int(rec["mix_mode"]) == 1:
            assert 0 <= y1 <= y2 <= oh and 0 <= x1 <= x2 <= ow
        else:
            assert (y1, x1, y2, x2) == (0, 0, 0, 0)


@pytest.mark.parametrize("name", drkit.POLICIES)
@PROPERTY
@given(case=_cases())
def test_sample_is_pure_and_replay_is_exact(name, case):
    policy = Policy(PolicyConfig(name, size=case["size"]), case["shape"])
    coords = (case["seed"], case["index"], case["aug"])
    bounds = {"num_samples": case["num_samples"], "num_augs": case["num_augs"]}

    # (a) sampling is a pure function of its arguments
    rec = policy.sample(*coords, **bounds)
    again = policy.sample(*coords, **bounds)
    assert rec.dtype == policy.param_dtype
    assert rec.tobytes() == again.tobytes()
    _check_record(policy, rec, case)

    image, partner = _images(case["shape"], case["pixels_seed"])
    mix: tuple = ()
    if policy.config.uses_mixing:
        # the partner's record, as the store has it (only its base part is used)
        p_rec = policy.sample(case["seed"], int(rec["partner"]), int(rec["partner_aug"]), **bounds)
        mix = (partner, p_rec)

    # (b) replay is bit-exact
    out = policy.apply(image, rec, *mix)
    assert torch.equal(out, policy.apply(image, rec, *mix))

    # (c) a record survives a round trip through bytes
    decoded = np.frombuffer(rec.tobytes(), policy.param_dtype)
    assert decoded.shape == (1,)
    mix_decoded = mix
    if mix:
        mix_decoded = (partner, np.frombuffer(mix[1].tobytes(), policy.param_dtype)[0])
    assert torch.equal(policy.apply(image, decoded[0], *mix_decoded), out)

    # (d) shape and range
    c = case["shape"][0]
    assert out.dtype == torch.float32
    assert out.shape == (c, *policy.size)
    assert policy.size == (case["size"] or case["shape"][1:])
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


@pytest.mark.parametrize("name", drkit.POLICIES)
def test_records_vary_with_coordinates(name):
    policy = Policy(name, (3, 40, 48))
    recs = {policy.sample(0, i, j, num_samples=100, num_augs=4).tobytes() for i in range(25) for j in range(4)}
    assert len(recs) == 100
    assert policy.sample(1, 0, 0, num_samples=100, num_augs=4).tobytes() != \
        policy.sample(0, 0, 0, num_samples=100, num_augs=4).tobytes()


@pytest.mark.parametrize("name", drkit.POLICIES)
def test_views_vary_with_coordinates(name):
    policy = Policy(name, (1, 28, 28))
    image, partner = _images((1, 28, 28), 0)
    views = []
    for j in range(4):
        rec = policy.sample(0, 5, j, num_samples=10, num_augs=4)
        mix = (partner, policy.sample(0, int(rec["partner"]), int(rec["partner_aug"]), num_samples=10, num_augs=4)) \
            if policy.config.uses_mixing else ()
        views.append(policy.apply(image, rec, *mix))
    assert all(not torch.equal(views[0], v) for v in views[1:])


def test_base_part_of_sample_is_sample_base():
    policy = Policy("randaugment+mixing", (1, 16, 16))
    full = policy.sample(3, 4, 5, num_samples=10, num_augs=8)
    base = policy.sample_base(3, 4, 5)
    for name in ("crop", "flip", "ra_op", "ra_mag", "erase"):
        np.testing.assert_array_equal(full[name], base[name])
    assert int(base["partner"]) == 0 and int(base["mix_lam"]) == 0  # base leaves mixing fields empty


def test_mixing_policy_uses_both_modes_and_the_stored_weight():
    policy = Policy("mixing", (1, 16, 16))
    recs = [policy.sample(0, i, 0, num_samples=50, num_augs=1) for i in range(50)]
    modes = [int(r["mix_mode"]) for r in recs]
    assert 10 < sum(modes) < 40  # cutmix_p = 0.5
    r = recs[0]
    assert policy.mix_weight(r) == pytest.approx(int(r["mix_lam"]) / LAMBDA_SCALE)
    assert Policy("cropflip", (1, 16, 16)).mix_weight(Policy("cropflip", (1, 16, 16)).sample(
        0, 0, 0, num_samples=2, num_augs=1)) == 1.0


@pytest.mark.parametrize("name", ["mixing", "randaugment+mixing"])
def test_partner_is_never_the_sample_itself(name):
    policy = Policy(name, (1, 8, 8))
    for i in (0, 1):
        for j in range(20):
            assert int(policy.sample(j, i, 0, num_samples=2, num_augs=1)["partner"]) == 1 - i
    partners = [int(policy.sample(0, 3, j, num_samples=5, num_augs=50)["partner"]) for j in range(50)]
    assert set(partners) == {0, 1, 2, 4}  # uniform over the others


def test_single_sample_mixes_with_itself():
    policy = Policy("mixing", (1, 8, 8))
    rec = policy.sample(0, 0, 0, num_samples=1, num_augs=2)
    assert int(rec["partner"]) == 0


def test_cutmix_record_replays_as_a_paste():
    policy = Policy(PolicyConfig("mixing", cutmix_p=1.0), (1, 20, 20))
    image, partner = _images((1, 20, 20), 3)
    rec = next(r for i in range(20) if int((r := policy.sample(0, i, 0, num_samples=30, num_augs=1))["mix_box"][2]) > 0)
    p_rec = policy.sample(0, int(rec["partner"]), 0, num_samples=30, num_augs=1)
    out = policy.apply(image, rec, partner, p_rec)
    y1, x1, y2, x2 = (int(v) for v in rec["mix_box"])
    torch.testing.assert_close(out[:, y1:y2, x1:x2], policy.apply_base(partner, p_rec)[:, y1:y2, x1:x2], rtol=0, atol=0)
    own = policy.apply_base(image, rec)
    mask = torch.ones_like(own, dtype=torch.bool)
    mask[:, y1:y2, x1:x2] = False
    assert torch.equal(out[mask], own[mask])


def test_policy_apply_rejects_bad_images():
    policy = Policy("cropflip", (1, 8, 8))
    rec = policy.sample(0, 0, 0, num_samples=1, num_augs=1)
    with pytest.raises(ConfigError, match="uint8"):
        policy.apply(torch.zeros(1, 8, 8), rec)
    with pytest.raises(ConfigError, match="uint8"):
        policy.apply(torch.zeros(8, 8, dtype=torch.uint8), rec)
    with pytest.raises(ConfigError, match="1-channel"):
        policy.apply(torch.zeros(3, 8, 8, dtype=torch.uint8), rec)
    # a crop box sampled for an 8x8 image does not fit a smaller one: an error, not zero padding
    big = next(r for r in (policy.sample(0, i, 0, num_samples=9, num_augs=1) for i in range(50))
               if int(r["crop"][2]) > 4 or int(r["crop"][3]) > 4)
    with pytest.raises(ConfigError, match="does not fit"):
        policy.apply(torch.zeros(1, 4, 4, dtype=torch.uint8), big)


def test_partner_image_that_its_params_do_not_fit_raises():
    policy = Policy("mixing", (1, 8, 8))
    rec = next(r for r in (policy.sample(0, i, 0, num_samples=60, num_augs=1) for i in range(50))
               if int(r["crop"][2]) > 4 or int(r["crop"][3]) > 4)
    image = torch.zeros(1, 8, 8, dtype=torch.uint8)
    with pytest.raises(ConfigError, match="does not fit"):
        policy.apply(image, rec, torch.zeros(1, 4, 4, dtype=torch.uint8), rec)


@pytest.mark.parametrize("name", drkit.POLICIES)
def test_images_of_different_sizes_share_one_output_size(name):
    """An image folder's images differ in size: boxes are drawn inside each image, views share ``size``."""
    policy = Policy(PolicyConfig(name, size=(16, 16)), (3, 20, 30))
    images = {i: torch.randint(0, 256, (3, 12 + 7 * i, 40 - 5 * i), dtype=torch.uint8) for i in range(4)}
    for i, img in images.items():
        rec = policy.sample(3, i, 0, num_samples=4, num_augs=1, image_hw=img.shape[-2:])
        top, left, h, w = (int(v) for v in rec["crop"])
        assert top + h <= img.shape[1] and left + w <= img.shape[2]
        extra = ()
        if policy.config.uses_mixing:
            q = int(rec["partner"])
            extra = (images[q], policy.sample_base(3, q, 0, image_hw=images[q].shape[-2:]))
        view = policy.apply(img, rec, *extra)
        assert view.shape == (3, 16, 16)
        assert torch.equal(view, policy.apply(img, rec.copy(), *extra))  # replay is exact
    # for images of the policy's own shape, image_hw changes nothing
    assert policy.sample(3, 1, 2, num_samples=4, num_augs=3).tobytes() == policy.sample(
        3, 1, 2, num_samples=4, num_augs=3, image_hw=(20, 30)).tobytes()


@pytest.mark.parametrize("name", ["mixing", "randaugment+mixing"])
def test_mixing_without_partner_raises(name):
    policy = Policy(name, (1, 8, 8))
    rec = policy.sample(0, 0, 0, num_samples=4, num_augs=1)
    image = torch.zeros(1, 8, 8, dtype=torch.uint8)
    with pytest.raises(ConfigError, match="partner"):
        policy.apply(image, rec)
    with pytest.raises(ConfigError, match="partner"):
        policy.apply(image, rec, partner_image=image)


@pytest.mark.parametrize(("name", "itemsize"),
                         [("cropflip", 9), ("randaugment", 21), ("mixing", 26), ("randaugment+mixing", 38)])
def test_record_itemsize(name, itemsize):
    policy = Policy(name, (1, 28, 28))
    assert policy.param_dtype.itemsize == itemsize
    assert policy.sample(0, 0, 0, num_samples=2, num_augs=1).nbytes == itemsize


def test_record_size_grows_with_ra_num_ops():
    assert Policy(PolicyConfig("randaugment", ra_num_ops=4), (1, 8, 8)).param_dtype.itemsize == 25


def test_default_scale_depends_on_image_size():
    assert Policy("cropflip", (1, 28, 28)).config.scale == (0.35, 1.0)
    assert Policy("cropflip", (3, 64, 80)).config.scale == (0.08, 1.0)
    assert Policy(PolicyConfig("cropflip", scale=(0.5, 0.9)), (3, 64, 64)).config.scale == (0.5, 0.9)
    assert Policy("cropflip", (3, 40, 48)).size == (40, 48)
    assert Policy(PolicyConfig("cropflip", size=(32, 16)), (3, 40, 48)).size == (32, 16)


def test_default_policy_is_randaugment():
    assert PolicyConfig().name == "randaugment"
    assert set(drkit.POLICIES) == {"cropflip", "randaugment", "mixing", "randaugment+mixing"}


def test_policy_config_round_trips_through_dict():
    cfg = PolicyConfig("randaugment+mixing", size=(12, 10), scale=(0.2, 0.9), ra_num_ops=3)
    d = cfg.to_dict()
    assert d["size"] == [12, 10] and d["name"] == "randaugment+mixing"
    assert PolicyConfig.from_dict(d) == cfg
    with pytest.raises(ConfigError, match="unknown policy settings"):
        PolicyConfig.from_dict({**d, "sharpen": 1})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "autoaugment"}, "unknown policy 'autoaugment'; choose one of cropflip"),
        ({"flip_p": 1.5}, "flip_p is a probability"),
        ({"erase_p": -0.1}, "erase_p is a probability"),
        ({"cutmix_p": 2}, "cutmix_p is a probability"),
        ({"scale": (0.5, 0.2)}, "scale must be a range 0 < low <= high"),
        ({"scale": (0.0, 0.5)}, "scale must be a range"),
        ({"scale": (0.5, 1.5)}, "fraction of the image area"),
        ({"ratio": (2.0, 1.0)}, "ratio must be a range"),
        ({"erase_scale": (-0.1, 0.3)}, "erase_scale must be a range"),
        ({"erase_ratio": (3.3, 0.3)}, "erase_ratio must be a range"),
        ({"size": (0, 8)}, "size must be two positive integers"),
        ({"size": (8, 70000)}, "size must be two positive integers"),
        ({"ra_num_ops": 0}, "ra_num_ops must be in 1..8"),
        ({"ra_num_ops": 9}, "ra_num_ops must be in 1..8"),
        ({"ra_magnitude": 31}, "ra_magnitude must be in 0..ra_num_bins-1"),
        ({"ra_num_bins": 1, "ra_magnitude": 0}, "ra_num_bins in 2..128"),
        ({"mix_alpha": 0.0}, "mix_alpha must be > 0"),
        ({"ra_magnitude_std": -1.0}, "ra_magnitude_std >= 0"),
    ],
)
def test_policy_config_validation(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        PolicyConfig(**kwargs)


def test_config_error_is_a_value_error():
    with pytest.raises(ValueError):
        PolicyConfig("nope")


@pytest.mark.parametrize("shape", [(0, 8, 8), (1, 0, 8), (1, 8, 70000)])
def test_policy_rejects_bad_image_shapes(shape):
    with pytest.raises(ConfigError, match="image shape"):
        Policy("cropflip", shape)


def test_policy_accepts_a_name():
    p = Policy("mixing", (1, 8, 8))
    assert p.config.name == "mixing" and "mixing" in repr(p)
    assert p.describe()["name"] == "mixing" and p.describe()["size"] == [8, 8]

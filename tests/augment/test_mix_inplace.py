"""Policy.apply mixes its two freshly made views in place (no new tensors per mixed item): the same
float operations in the same order as the out-of-place ops, so the same bits."""

from __future__ import annotations

import numpy as np
import torch

from drkit.augment import ops
from drkit.augment.policies import Policy


def test_in_place_mixing_gives_the_same_bits():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(3, 17, 19, generator=g), torch.rand(3, 17, 19, generator=g)
    for lam_q in (0, 1, 12345, 40000, 65535):
        want = ops.apply_mixup(x, y, lam_q)
        got = ops.apply_mixup(x.clone(), y.clone(), lam_q, inplace=True)
        assert torch.equal(got, want)
    box = (2, 3, 11, 15)
    assert torch.equal(ops.apply_cutmix(x.clone(), y, box, inplace=True), ops.apply_cutmix(x, y, box))


def test_policy_replay_equals_the_out_of_place_mix_and_leaves_its_inputs_alone():
    rng = np.random.default_rng(0)
    images = [torch.from_numpy(rng.integers(0, 256, size=(3, 20, 24), dtype=np.uint8)) for _ in range(3)]
    copies = [im.clone() for im in images]
    policy = Policy("randaugment+mixing", (3, 20, 24))
    modes = set()
    for aug in range(16):
        rec = policy.sample(0, 0, aug, num_samples=3, num_augs=16)
        p, a = int(rec["partner"]), int(rec["partner_aug"])
        prec = policy.sample(0, p, a, num_samples=3, num_augs=16)
        x, y = policy.apply_base(images[0], rec), policy.apply_base(images[p], prec)
        want = (ops.apply_cutmix(x, y, rec["mix_box"]) if int(rec["mix_mode"]) == 1
                else ops.apply_mixup(x, y, int(rec["mix_lam"])))
        assert torch.equal(policy.apply(images[0], rec, images[p], prec), want)
        modes.add(int(rec["mix_mode"]))
    assert modes == {0, 1} and all(torch.equal(a, b) for a, b in zip(images, copies, strict=True))

"""ERM and online-KD data: a dataset augmented afresh each epoch with a policy (and optionally
torchvision's AugMix), its randomness a pure function of (seed, index, epoch)."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from ..augment.policies import Policy, PolicyConfig
from ..augment.rng import rng_at
from ..data import ImageDataset

_AUGMIX_STREAM = 7  # rng_at coordinate of AugMix's seed, apart from the policy's own streams


def augmix(image: torch.Tensor, seed: int, index: int, epoch: int) -> torch.Tensor:
    """torchvision v2 ``AugMix`` (Hendrycks et al., 2020) of a ``uint8 (C, H, W)`` image, its
    randomness a pure function of (seed, index, epoch): torch's global generator is forked and
    seeded for the call, so neither the result nor the caller's random stream depend on order."""
    s = int(rng_at(seed, _AUGMIX_STREAM, index, epoch).integers(2**62))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s)
        return v2.AugMix()(image)


class FreshAugmented(Dataset):
    """``dataset`` augmented afresh each epoch with ``policy``: ``(view, one-hot target, label)``.

    Parameters are a pure function of (seed, index, epoch): call :meth:`set_epoch` every epoch.
    With a mixing policy the target mixes the two one-hot labels by the mixing weight. With
    ``augmix`` each source image first goes through :func:`augmix` (a robustness recipe for
    teachers; not replayable from a store, so ERM/teacher training only).
    """

    def __init__(self, dataset: ImageDataset, policy: Policy | PolicyConfig | str, *, seed: int = 0,
                 augmix: bool = False) -> None:
        self.dataset = dataset
        self.policy = policy if isinstance(policy, Policy) else Policy(policy, dataset.image_shape)
        self.seed, self.epoch, self.augmix = seed, 0, augmix

    def _image(self, index: int) -> torch.Tensor:
        image = self.dataset.image(index)
        return augmix(image, self.seed, index, self.epoch) if self.augmix else image

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        ds, policy = self.dataset, self.policy
        image = self._image(index)
        params = policy.sample(self.seed, index, self.epoch, num_samples=len(ds), num_augs=1,
                               image_hw=image.shape[-2:])
        label = int(ds.labels[index])
        target = torch.zeros(ds.num_classes)
        # the partner's view is sampled afresh for this epoch (its record index is the epoch, not partner_aug)
        x = policy.replay(image, params, self._image,
                          lambda p, _, im: policy.sample_base(self.seed, p, self.epoch, image_hw=im.shape[-2:]))
        lam = policy.mix_weight(params)
        target[label] += lam
        if policy.config.uses_mixing:
            target[int(ds.labels[int(params["partner"])])] += 1.0 - lam
        return x, target, label

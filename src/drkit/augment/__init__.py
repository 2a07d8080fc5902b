"""Stage 1, augment: parametrized augmentation that is sampled once and replayed exactly.

- :mod:`~drkit.augment.rng`: the counter-based generator — every random choice a pure function of
  (seed, stream, sample, augmentation);
- :mod:`~drkit.augment.ops`: pure ``sample``/``apply`` pairs per op (crop, flip, RandAugment ops,
  erasing, MixUp/CutMix), batched-free and bit-exact on replay;
- :mod:`~drkit.augment.policies`: the paper's policies as :class:`Policy` (parameter record dtype,
  sampling, application, mixing replay).
"""

from .policies import DEFAULT_POLICY, POLICIES, Policy, PolicyConfig

__all__ = ["POLICIES", "DEFAULT_POLICY", "Policy", "PolicyConfig"]

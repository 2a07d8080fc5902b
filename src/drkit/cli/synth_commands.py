"""The support-set subcommands of the ``drkit`` command line (registered by :mod:`drkit.cli.main`):

    drkit synth fit-generator DATA --out GEN [--train-samples N] [--domain NAME ...] [--json] [options]
    drkit synth run DATA --generator local:GEN|diffusers:PATH_OR_ID --agent ppo|bandit|random --out SUPPORT [--json]

``fit-generator`` trains the offline class-conditional diffusion model on the training part of
DATA (the same validation split ``synth run`` holds out); ``synth run`` lets an agent spend the
image budget and writes the support set: ``drkit reinforce imagefolder:SUPPORT`` gives its images
teacher soft labels. The library computes (``drkit.synth``); this module only parses and prints.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from ..data import load_dataset, stratified_subset
from ..errors import ConfigError
from ..synth import (
    DEFAULT_DOMAINS,
    LocalDiffusionConfig,
    SynthConfig,
    fit_local_generator,
    load_generator,
    run_synth,
    split_validation,
)
from ..synth.agents import AGENTS
from ..synth.support import as_array_dataset
from .args import add_dataclass_args, config_from_args
from .common import add_command, add_json_flag, print_json

__all__ = ["add_synth_commands"]


def _real_data(args: argparse.Namespace) -> Any:
    """DATA, or a stratified subset of ``--train-samples`` images of it (the limited-data regime)."""

    data = load_dataset(args.data, download=args.download)
    if args.train_samples is None:
        return data
    if not 0 < args.train_samples <= len(data):
        raise ConfigError(f"--train-samples must be in 1..{len(data)}, got {args.train_samples}")
    pool = as_array_dataset(data)
    idx = stratified_subset(pool.labels, args.train_samples / len(pool), seed=0)
    return pool.subset(idx, name=f"{pool.name}[{len(idx)}]")


def _cmd_fit_generator(args: argparse.Namespace) -> int:
    train, val = split_validation(_real_data(args), args.val_fraction, seed=args.split_seed)
    t0 = time.perf_counter()
    gen = fit_local_generator(train, args.out, config_from_args(LocalDiffusionConfig, args),
                              domains=args.domain or DEFAULT_DOMAINS, progress=not args.quiet)
    seconds = time.perf_counter() - t0
    if args.json:
        print_json({"generator": str(args.out), "trained_steps": gen.trained_steps, "domains": list(gen.domains),
                    "train": {"name": train.name, "samples": len(train)}, "validation_samples": len(val),
                    "seconds": seconds})
        return 0
    print(f"\nlocal generator trained on {train.name} ({len(train):,} images; {len(val):,} held out for validation) "
          f"-> {args.out}")
    print(f"  {gen.trained_steps} steps, domains {', '.join(gen.domains)}; {seconds:.0f} s")
    print(f"  use it: drkit synth run {args.data} --generator local:{args.out} --out SUPPORT"
          + (f" --train-samples {args.train_samples}" if args.train_samples else ""))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    options: dict[str, Any] = {}
    if args.agent == "ppo":
        options = {"n_steps": args.ppo_n_steps, "batch_size": args.ppo_batch_size}
    if args.generator.startswith("diffusers:"):
        gen_options = {"steps": args.sd_steps, "guidance_scale": args.sd_guidance, "resolution": args.sd_resolution,
                       "allow_download": args.allow_download}

        real = as_array_dataset(_real_data(args))
        generator: Any = load_generator(args.generator, class_names=real.classes, image_shape=real.image_shape,
                                        domains=args.domain, device=args.device, **gen_options)
        data: Any = real
    else:
        generator, data = args.generator, _real_data(args)
    s = run_synth(data, generator, args.out, agent=args.agent, config=config_from_args(SynthConfig, args),
                  teacher=args.teacher, domains=args.domain, agent_options=options, progress=not args.quiet)
    if args.json:
        print_json(s)
        return 0
    st, iv, fv = s["settings"], s["initial_validation"], s["final_validation"]
    print(f"\nsupport set of {s['images']} images in {s['steps']} steps ({args.agent}) -> {args.out}")
    print(f"  validation ({st['val']['name']}): top-1 {iv['accuracy']:.2%} -> {fv['accuracy']:.2%}, "
          f"mean entropy {iv['mean_entropy']:.3f} -> {fv['mean_entropy']:.3f}")
    if "policy_updates" in s["agent_stats"]:
        print(f"  PPO policy updates: {s['agent_stats']['policy_updates']} (rollouts of {s['agent_stats']['n_steps']} steps)")
    print("  favoured prompts:")
    for p in s["favoured_prompts"]:
        print(f"    {p['steps']:>3} × {p['prompt']}  (mean reward {p['mean_reward']:+.4f})")
    print(f"  wall time {s['seconds']['total']:.0f} s; next: drkit reinforce imagefolder:{args.out} --teacher ... "
          "to give the images teacher soft labels")
    return 0


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="real training data: digits, fashion-mnist, imagefolder:PATH or npz:PATH")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--train-samples", type=int, help="use a stratified subset of this many real images (seed 0)")
    p.add_argument("--domain", action="append", help="a prompt domain; repeat (default: photo, sketch, "
                                                     "close-up photo, blurry photo)")
    p.add_argument("--download", action="store_true", help="allow downloading the dataset (torchvision)")
    add_json_flag(p, "the result")


def add_synth_commands(sub: Any) -> None:
    """Add ``synth fit-generator`` and ``synth run`` to the ``drkit`` subparsers ``sub``."""

    synth = add_command(sub, "synth", help="compact synthetic support sets: a prompt agent and a generator",
                           description="Schiavone & Li (arXiv 2404.16300): an agent composes prompts, a generator "
                                       "makes a few images per step, rewarded by the validation gain.")
    commands = synth.add_subparsers(dest="synth_command", required=True)

    f = add_command(commands, "fit-generator", help="train the offline class-conditional diffusion generator",
                            description="Train a small class-conditional diffusion model (diffusers UNet) on the "
                                        "training part of DATA. Rerun to resume; a finished one is reused.")
    _add_data_args(f)
    f.add_argument("--val-fraction", type=float, default=SynthConfig.val_fraction,
                   help="share held out for validation, not trained on (as synth run)")
    f.add_argument("--split-seed", type=int, default=0, help="seed of that split (as synth run)")
    add_dataclass_args(f, LocalDiffusionConfig)
    f.set_defaults(func=_cmd_fit_generator)

    r = add_command(commands, "run", help="let an agent build a support set and write it as an image folder",
                            description="Spend --budget generated images, --images-per-step per agent step; the "
                                        "classifier trains on real + synthetic data after each step and the reward "
                                        "is read off a validation split of DATA (never a test set).")
    _add_data_args(r)
    r.add_argument("--generator", required=True, help="local:DIR (drkit synth fit-generator) or diffusers:PATH_OR_ID")
    r.add_argument("--agent", choices=AGENTS, default="ppo", help="ppo (SB3), bandit (Thompson) or random")
    r.add_argument("--teacher", action="append", help="teacher spec for --synthetic-label teacher; repeatable")
    r.add_argument("--ppo-n-steps", type=int, default=8, help="PPO rollout length in steps")
    r.add_argument("--ppo-batch-size", type=int, default=8, help="PPO minibatch size")
    g = r.add_argument_group("diffusers generator")
    g.add_argument("--sd-steps", type=int, default=25, help="inference steps (default: 25; SDXL-Turbo: 1)")
    g.add_argument("--sd-guidance", type=float, default=7.5, help="guidance scale (default: 7.5; SDXL-Turbo: 0)")
    g.add_argument("--sd-resolution", type=int, help="render side length (default: the pipeline's)")
    g.add_argument("--allow-download", action="store_true", help="let diffusers fetch the pipeline from the hub")
    add_dataclass_args(r, SynthConfig)
    r.set_defaults(func=_cmd_run)

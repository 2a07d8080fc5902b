"""The training subcommands of the ``drkit`` command line (registered by :mod:`drkit.cli.main`):

    drkit train DATA --arch NAME --mode erm|dr|kd --out RUN [--json] [options]
    drkit teach DATA --arch A [--arch B ...] --out TEACHERS [--json] [options]

The library computes (:func:`drkit.training.runs.train_run`, :func:`drkit.teach.teach`); this module
only parses and prints.
"""

from __future__ import annotations

import argparse
import functools
from typing import Any

from ..teach import TEACH_TRAIN_DEFAULTS, TeachConfig, teach
from ..training.distributed import launch_rank
from ..training.loop import TrainConfig
from ..training.runs import train_run
from .args import add_dataclass_args, config_from_args
from .common import DATA_HELP, add_command, add_json_flag, print_json, status

__all__ = ["add_train_commands"]


def _cmd_train(args: argparse.Namespace) -> int:
    m = train_run(args.data, args.out, arch=args.arch, mode=args.mode, store=args.store, teachers=args.teacher or (),
                  policy=args.policy, eval_data=args.eval_data, init=args.init, train_fraction=args.train_fraction,
                  views=args.views, reinforced_prob=args.reinforced_prob, only_matching=args.only_matching, temperature=args.temperature, image_size=args.image_size,
                  config=config_from_args(TrainConfig, args), augmix=args.augmix,
                  trust_store_teachers=args.trust_store_teachers, stream=args.stream, progress=not args.quiet)
    if launch_rank() != 0:  # under torchrun every rank returns the same result: rank 0 prints it
        return 0
    if args.json:
        print_json(m.to_dict() if hasattr(m, "to_dict") else dict(m))
        return 0
    c = m["config"]
    print(f"\ntrained {c['arch']} ({c['mode']}, policy {c['policy']}) on {c['dataset']} "
          f"({c['train_samples']:,} samples) for {len(m['epochs'])} epochs in {m['train_seconds']:.1f} s -> {args.out}")
    if "final" in m:
        f = m["final"]
        print(f"  {c['eval_data']}: top-1 {f['top1']:.2%}  NLL {f['nll']:.3f}  ECE {f['ece']:.3f}  Brier {f['brier']:.3f}")
    return 0


def _print_teach(r: Any) -> None:
    ev = r.eval_data
    print(f"\nteacher ensemble {r.root} (T = {r.temperature:.3f}, fitted on the held-out split)")
    head = f"  {'member':<28}{'held-out':>9}{'NLL':>7}{'ECE':>7}"
    if ev:
        head += f"{'test':>9}{'NLL':>7}{'ECE':>7}"
    print(head + f"{'corrupt.':>10}{'train s':>9}")
    for row in [*r.members, r.ensemble]:
        h = row["holdout"]
        line = f"  {row['arch']:<28}{h['top1']:>9.2%}{h['nll']:>7.3f}{h['ece']:>7.3f}"
        if ev:
            e = row["eval"]
            line += f"{e['top1']:>9.2%}{e['nll']:>7.3f}{e['ece']:>7.3f}"
        corr = row.get("corruption_accuracy")
        print(line + (f"{corr:>10.2%}" if corr is not None else f"{'-':>10}") + f"{row['train_seconds']:>9.0f}")
    if ev:
        print(f"  test: {ev}; corrupt.: top-1 under 9 generated corruptions × 5 severities")
    print(f"\nuse it: drkit reinforce DATA --teacher ensemble:{r.root} --out STORE")


def _cmd_teach(args: argparse.Namespace) -> int:
    r = teach(args.data, args.arch, args.out, config_from_args(TeachConfig, args), config_from_args(TrainConfig, args),
              eval_data=args.eval_data, init=args.init, progress=not args.quiet,
              report=functools.partial(status, args))
    if args.json:
        print_json(r.to_dict())
    else:
        _print_teach(r)
    return 0


def add_train_commands(sub: Any) -> None:
    """Add ``train`` and ``teach`` to the ``drkit`` subparsers ``sub``."""
    t = add_command(sub, "train", help="train a student: erm, dr (reinforced store) or kd (online teacher)",
                    description="Train a timm or drkit architecture at equal epochs and policy with ERM, DR or "
                                "online KD. Writes config, per-epoch metrics and safetensors checkpoints to --out; "
                                "rerun to resume.")
    t.add_argument("data", help=DATA_HELP)
    t.add_argument("--arch", default="smallcnn", help="smallcnn[-W], mlp[-W], vit-mini[-D] or a timm name, "
                   "NAME.TAG@pretrained[:FILE] for timm's pretrained weights")
    t.add_argument("--mode", choices=("erm", "dr", "kd"), default="dr", help="target: labels, store, or online teacher")
    t.add_argument("--out", required=True, help="run directory")
    t.add_argument("--store", help="reinforced store (dr; kd uses its teachers when --teacher is absent)")
    t.add_argument("--teacher", action="append", help="kd teacher spec, as for reinforce; repeat for an ensemble")
    t.add_argument("--policy", help="augmentation policy (erm/kd; default: the store's, else randaugment)")
    t.add_argument("--eval-data", help="evaluation split (default: DATA:test for digits/fashion-mnist)")
    t.add_argument("--init", help="fine-tune from a run directory or a weights file (a raw timm/safetensors state "
                   "dict; an RGB stem is adapted to grayscale; a new head when classes differ)")
    t.add_argument("--augmix", action="store_true", help="erm/kd: add torchvision's AugMix to the views")
    t.add_argument("--trust-store-teachers", action="store_true",
                   help="kd without --teacher: load the teachers the --store names (they may be code: only for "
                        "stores you trust)")
    t.add_argument("--train-fraction", type=float, default=1.0, help="stratified fraction of the training set")
    t.add_argument("--stream", action="store_true",
                   help="dr on wds:PATTERN: read the tar shards in sequence (shuffled per epoch, split over DDP "
                        "ranks and --num-workers) instead of one random read per sample")
    t.add_argument("--views", type=int, default=1, help="dr: stored augmentations per decoded image (FKD-style)")
    t.add_argument("--only-matching", action="store_true",
                   help="dr on another copy of the data: train on the samples whose key and content match the "
                        "store's (the rest are reported and left out); default: any mismatch is an error")
    t.add_argument("--reinforced-prob", type=float, default=1.0, metavar="P",
                   help="dr: probability of a stored view per item; otherwise the original image with its hard "
                        "label (ml-dr's p; < 1 eases the reinforcement for small students)")
    t.add_argument("--temperature", type=float, help="kd: teacher softmax temperature (default: an ensemble:DIR's "
                   "fitted one, else 1)")
    t.add_argument("--image-size", type=int, help="erm/kd: side of the square training views and model input "
                   "(default: the first image's size; dr: the store's)")
    add_json_flag(t, "the run's metrics (config, per-epoch and final evaluation metrics, train_seconds)")
    add_dataclass_args(t, TrainConfig)
    t.set_defaults(func=_cmd_train)

    te = add_command(sub, "teach",
                     help="build a teacher ensemble: train/fine-tune diverse members, fit its temperature",
                     description="Train (or fine-tune from NAME@pretrained / --init weights) one member per --arch "
                                 "with a strong recipe on the training split minus a stratified held-out split, fit "
                                 "the ensemble's softmax temperature on that split and write DIR/ensemble.json for "
                                 "--teacher ensemble:DIR. Prints each member's and the ensemble's top-1, NLL, ECE, "
                                 "corruption accuracy and time. Rerun to resume.")
    te.add_argument("data", help=DATA_HELP)
    te.add_argument("--arch", action="append", required=True,
                    help="a member's architecture (as for train; NAME.TAG@pretrained[:FILE] fine-tunes); repeat")
    te.add_argument("--out", required=True, help="the ensemble's folder")
    te.add_argument("--init", action="append", help="per member, in --arch order: a run directory or weights file")
    te.add_argument("--eval-data", help="also evaluate on this split (default: DATA:test for digits/fashion-mnist)")
    add_json_flag(te, "the report")
    add_dataclass_args(te, TeachConfig)
    add_dataclass_args(te.add_argument_group("optimisation of every member"), TrainConfig,  # type: ignore[arg-type]
                       defaults=TEACH_TRAIN_DEFAULTS)
    te.set_defaults(func=_cmd_teach)

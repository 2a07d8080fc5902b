"""The ``drkit demo`` subcommand (registered by :mod:`drkit.cli.main`):

    drkit demo [--out DIR] [--teacher-epochs N] [--num-augs N] [--student-epochs N] [--json]

The library runs it (:func:`drkit.demo.run_demo`); this module only parses and prints.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from ..demo import DemoConfig, run_demo
from .args import human_bytes
from .common import add_command, add_json_flag, print_json

__all__ = ["add_demo_command"]


def _print_demo(r: dict[str, Any], out: str, seconds: float) -> None:
    print("\nteacher ensemble (digits, test split)")
    for t in r["teachers"]:
        print(f"  {t['arch']:<14} top-1 {t['top1']:.2%}   {t['run']}")
    print(f"  {'ensemble':<14} top-1 {r['ensemble']['top1']:.2%}   T = {r['ensemble']['temperature']:.2f} "
          f"(fitted on held-out training images)")
    s = r["store"]
    print(f"\nreinforced store  {s['path']}: {s['num_samples']:,} samples × {s['num_augs']} augmentations, "
          f"policy {s['policy']}, {s['bytes_per_record']:.1f} B per augmentation, {human_bytes(s['bytes'])}")
    st = r["students"]
    print(f"\nstudent {DemoConfig.student}, same epochs and policy ({s['policy']}), digits test split")
    robust = "corruption_accuracy" in st["erm"]
    print(f"  {'':<6}{'top-1':>8}{'NLL':>8}{'ECE':>8}{'Brier':>8}"
          + (f"{'corrupt.':>10}{'mCE':>7}{'rotate':>8}{'transl.':>9}" if robust else "") + f"{'train s':>9}")
    for mode in ("erm", "dr"):
        m = st[mode]
        print(f"  {mode.upper():<6}{m['top1']:>8.2%}{m['nll']:>8.3f}{m['ece']:>8.3f}{m['brier']:>8.3f}"
              + (f"{m['corruption_accuracy']:>10.2%}{m['mce']:>7.3f}{m['rotation_accuracy']:>8.2%}"
                 f"{m['translation_accuracy']:>9.2%}" if robust else "") + f"{m['train_seconds']:>9.1f}")
    print(f"  DR − ERM top-1: {st['dr']['top1'] - st['erm']['top1']:+.2%}; store: {human_bytes(s['bytes'])}")
    if robust:
        print("  corrupt.: top-1 under 9 generated corruptions × 5 severities; mCE: corruption error relative to "
              "ERM; rotate/transl.: mean top-1 along the 15°–180° and 2–26 px sweeps (docs/evaluation.md)")
        print(f"  report: {r['report']}")
    print(f"\ndone in {seconds:.0f} s; runs and store under {out}")


def _cmd_demo(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    r = run_demo(DemoConfig(out=args.out, teacher_epochs=args.teacher_epochs, num_augs=args.num_augs,
                            student_epochs=args.student_epochs), progress=not args.quiet)
    if args.json:
        print_json({**r, "seconds": time.perf_counter() - t0})
    else:
        _print_demo(r, args.out, time.perf_counter() - t0)
    return 0


def add_demo_command(sub: Any) -> None:
    """Add ``demo`` to the ``drkit`` subparsers ``sub``."""
    d = add_command(sub, "demo",
                    help="end to end on bundled digits: teacher ensemble, reinforcement, ERM vs DR student",
                    description="Train a small teacher ensemble on scikit-learn digits, reinforce the training "
                                "split, train a student with ERM and with DR and compare them. Cached: rerunning "
                                "skips finished steps.")
    d.add_argument("--out", default=DemoConfig.out, help="output directory")
    d.add_argument("--teacher-epochs", type=int, default=DemoConfig.teacher_epochs, help="epochs of each teacher")
    d.add_argument("--num-augs", type=int, default=DemoConfig.num_augs, help="stored augmentations per sample")
    d.add_argument("--student-epochs", type=int, default=DemoConfig.student_epochs, help="epochs of each student")
    add_json_flag(d, "what it measured")
    d.set_defaults(func=_cmd_demo)

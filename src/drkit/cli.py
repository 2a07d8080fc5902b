"""The ``drkit`` command line. Each subcommand's options come from a typed config dataclass
(cleanrl-style), so the CLI and the Python API never disagree.

    drkit teach DATA --arch A [--arch B ...] --out TEACHERS [options]
    drkit reinforce DATA --teacher SPEC [--teacher SPEC ...] --out STORE [options]
    drkit info STORE [--json]
    drkit verify STORE [--data DATA]
    drkit train DATA --arch NAME --mode erm|dr|kd --out RUN [options]
    drkit demo [--out DIR]
    drkit eval RUN [--data DATA] [--json]          (these three: drkit.cli_eval)
    drkit compare RUN... --out REPORT
    drkit audit STORE --data DATA
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from . import __version__
from .errors import ConfigError, DrkitError

log = logging.getLogger("drkit")

_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, *, skip: Sequence[str] = (),
                       defaults: dict[str, Any] | None = None) -> None:
    """One ``--field-name`` option per dataclass field, typed and documented from the field;
    ``defaults`` replaces some fields' defaults (a command with another recipe)."""
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        type_name = str(f.type).replace(" | None", "").replace("Optional[", "").rstrip("]")
        kind = _TYPES.get(type_name, str)
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        default = f.default if f.default is not dataclasses.MISSING else None
        if defaults and f.name in defaults:
            default = defaults[f.name]
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        else:
            shown = "" if default is None or "default" in help_text else f" (default: {default})"
            parser.add_argument(flag, type=kind, default=default, dest=f.name, help=help_text + shown)


def _config_from_args(cls: type, args: argparse.Namespace) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(args).items() if k in names})


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB"


def _cmd_reinforce(args: argparse.Namespace) -> int:
    from .ray_engine import RayOptions
    from .reinforce import ReinforceConfig, reinforce
    from .teach import teacher_summary

    config = _config_from_args(ReinforceConfig, args)
    ray_options = _config_from_args(RayOptions, args)
    if args.engine != "ray" and ray_options != RayOptions():
        raise ConfigError("--address, --workers, --gpus-per-worker and --cpus-per-worker need --engine ray")
    if not args.quiet:  # what is known of the teachers, before hours are spent on them
        print("teachers", file=sys.stderr)
        for line in teacher_summary(args.teacher):
            print(f"  {line}", file=sys.stderr)
    t0 = time.perf_counter()
    store = reinforce(args.data, args.teacher, args.out, config, progress=not args.quiet, download=args.download,
                      engine=args.engine, ray_options=ray_options if args.engine == "ray" else None)
    stats = store.run_stats or {}
    s = store.summary()
    records = s["num_samples"] * s["num_augs"]
    source = stats.get("source_bytes")
    print(f"\nreinforced {s['dataset']['name']} -> {store.root}")
    print(f"  records           {records:,} ({s['num_samples']:,} samples × {s['num_augs']} augmentations), "
          f"policy {s['policy']}, top-{s['topk']}{' (dense)' if s['dense'] else ''}")
    print(f"  store size        {_human_bytes(s['bytes'])} = {s['bytes_per_record']:.1f} bytes per stored "
          f"augmentation ({s['record_bytes']} per record + shard headers)")
    if source:
        print(f"  overhead          {s['bytes'] / source:.2%} of the source dataset ({_human_bytes(source)})")
    if stats.get("records_computed"):
        print(f"  computed          {stats['records_computed']:,} records in {stats['seconds']:.1f} s "
              f"({stats['records_per_s']:.0f} images/s)"
              + (f" on {stats['workers']} Ray workers" if stats.get("engine") == "ray" else ""))
    else:
        print("  computed          nothing: the store was already complete")
    print(f"  wall time         {time.perf_counter() - t0:.1f} s")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .store import Store

    store = Store.open(args.store, verify=False)
    s = store.summary()
    if args.json:
        print(json.dumps(s, indent=2, sort_keys=True))
        return 0
    d = s["dataset"]
    print(f"store        {s['path']} (schema v{s['schema_version']})")
    print(f"dataset      {d['name']}: {d['length']:,} samples, {d['num_classes']} classes, images {d['image_shape']}")
    print(f"policy       {s['policy']}")
    members = ", ".join(m.get("spec", m.get("class", "?")) for m in s["teacher"]["members"])
    print(f"teacher      {members} (T={s['teacher']['temperature']})")
    print(f"records      {s['num_augs']} augmentations × top-{s['topk']}{' (dense)' if s['dense'] else ''}, "
          f"seed {s['seed']}")
    print(f"size         {_human_bytes(s['bytes'])} in {s['shards']} shards, {s['bytes_per_record']:.1f} B per augmentation")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from .data import load_dataset
    from .store import Store

    store = Store.open(args.store)
    dataset = load_dataset(args.data, download=args.download) if args.data else None
    report = store.verify(dataset)
    what = "checksums, records" + (" and dataset fingerprint" if dataset is not None else "")
    print(f"OK: {store.root}: {report['shards']} shards, {report['records']:,} records ({what} verified)")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .runs import train_run
    from .train import TrainConfig

    m = train_run(args.data, args.out, arch=args.arch, mode=args.mode, store=args.store, teachers=args.teacher or (),
                  policy=args.policy, eval_data=args.eval_data, init=args.init, train_fraction=args.train_fraction,
                  views=args.views, temperature=args.temperature, image_size=args.image_size,
                  config=_config_from_args(TrainConfig, args), augmix=args.augmix,
                  trust_store_teachers=args.trust_store_teachers, progress=not args.quiet)
    c = m["config"]
    print(f"\ntrained {c['arch']} ({c['mode']}, policy {c['policy']}) on {c['dataset']} "
          f"({c['train_samples']:,} samples) for {len(m['epochs'])} epochs in {m['train_seconds']:.1f} s -> {args.out}")
    if "final" in m:
        f = m["final"]
        print(f"  {c['eval_data']}: top-1 {f['top1']:.2%}  NLL {f['nll']:.3f}  ECE {f['ece']:.3f}  Brier {f['brier']:.3f}")
    return 0


def _cmd_teach(args: argparse.Namespace) -> int:
    from .teach import TeachConfig, teach
    from .train import TrainConfig

    def say(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    r = teach(args.data, args.arch, args.out, _config_from_args(TeachConfig, args), _config_from_args(TrainConfig, args),
              eval_data=args.eval_data, init=args.init, progress=not args.quiet, report=say)
    if args.json:
        print(json.dumps(r.to_dict(), indent=2))
        return 0
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
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DemoConfig, run_demo

    t0 = time.perf_counter()
    r = run_demo(DemoConfig(out=args.out, teacher_epochs=args.teacher_epochs, num_augs=args.num_augs,
                            student_epochs=args.student_epochs), progress=not args.quiet)
    print("\nteacher ensemble (digits, test split)")
    for t in r["teachers"]:
        print(f"  {t['arch']:<14} top-1 {t['top1']:.2%}   {t['run']}")
    print(f"  {'ensemble':<14} top-1 {r['ensemble']['top1']:.2%}   T = {r['ensemble']['temperature']:.2f} "
          f"(fitted on held-out training images)")
    s = r["store"]
    print(f"\nreinforced store  {s['path']}: {s['num_samples']:,} samples × {s['num_augs']} augmentations, "
          f"policy {s['policy']}, {s['bytes_per_record']:.1f} B per augmentation, {_human_bytes(s['bytes'])}")
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
    print(f"  DR − ERM top-1: {st['dr']['top1'] - st['erm']['top1']:+.2%}; store: {_human_bytes(s['bytes'])}")
    if robust:
        print("  corrupt.: top-1 under 9 generated corruptions × 5 severities; mCE: corruption error relative to "
              "ERM; rotate/transl.: mean top-1 along the 15°–180° and 2–26 px sweeps (docs/evaluation.md)")
        print(f"  report: {r['report']}")
    print(f"\ndone in {time.perf_counter() - t0:.0f} s; runs and store under {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .ray_engine import RayOptions
    from .reinforce import ReinforceConfig
    from .train import TrainConfig

    p = argparse.ArgumentParser(prog="drkit", description="Improve an image-classification dataset once.")
    p.add_argument("--version", action="version", version=f"drkit {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("reinforce", help="reinforce a dataset with a teacher ensemble",
                       description="Augment every sample NUM_AUGS times, run the teacher ensemble once per view "
                                   "and store the parameters + top-k probabilities. Rerun to resume.")
    r.add_argument("data", help="digits, fashion-mnist, imagefolder:PATH or npz:PATH")
    r.add_argument("--teacher", action="append", required=True,
                   help="ensemble:DIR (drkit teach), run:DIR, timm:NAME@CKPT, timm:NAME.TAG@pretrained[:FILE] (only if "
                        "its head has your classes), torchscript:PATH or python:MODULE:CALLABLE (these two run code); "
                        "repeat for an ensemble")
    r.add_argument("--out", required=True, help="store directory (created; resumed if it holds the same settings)")
    r.add_argument("--download", action="store_true", help="allow downloading the dataset (torchvision)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_dataclass_args(r, ReinforceConfig)
    r.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process; ray: Ray workers, same store (pip install 'drkit[ray]'; docs/distributed.md)")
    add_dataclass_args(r.add_argument_group("Ray engine (--engine ray)"), RayOptions,  # type: ignore[arg-type]
                       skip=("max_restarts", "shard_attempts", "runtime_env"))
    r.set_defaults(func=_cmd_reinforce)

    i = sub.add_parser("info", help="describe a store")
    i.add_argument("store")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.set_defaults(func=_cmd_info)

    v = sub.add_parser("verify", help="check a store's checksums and records, optionally against its dataset")
    v.add_argument("store")
    v.add_argument("--data", help="the dataset it was made from (checks length, labels, content)")
    v.add_argument("--download", action="store_true")
    v.set_defaults(func=_cmd_verify)

    t = sub.add_parser("train", help="train a student: erm, dr (reinforced store) or kd (online teacher)",
                       description="Train a timm or drkit architecture at equal epochs and policy with ERM, DR or "
                                   "online KD. Writes config, per-epoch metrics and safetensors checkpoints to --out; "
                                   "rerun to resume.")
    t.add_argument("data", help="digits, fashion-mnist, imagefolder:PATH or npz:PATH")
    t.add_argument("--arch", default="smallcnn", help="smallcnn[-W], mlp[-W], vit-mini[-D] or a timm name, "
                   "NAME.TAG@pretrained[:FILE] for timm's pretrained weights (default: smallcnn)")
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
    t.add_argument("--views", type=int, default=1, help="dr: stored augmentations per decoded image (FKD-style)")
    t.add_argument("--temperature", type=float, help="kd: teacher softmax temperature (default: an ensemble:DIR's "
                   "fitted one, else 1)")
    t.add_argument("--image-size", type=int, help="erm/kd: side of the square training views and model input "
                   "(default: the first image's size; dr: the store's)")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    add_dataclass_args(t, TrainConfig)
    t.set_defaults(func=_cmd_train)

    from .teach import TEACH_TRAIN_DEFAULTS, TeachConfig

    te = sub.add_parser("teach", help="build a teacher ensemble: train/fine-tune diverse members, fit its temperature",
                        description="Train (or fine-tune from NAME@pretrained / --init weights) one member per --arch "
                                    "with a strong recipe on the training split minus a stratified held-out split, fit "
                                    "the ensemble's softmax temperature on that split and write DIR/ensemble.json for "
                                    "--teacher ensemble:DIR. Prints each member's and the ensemble's top-1, NLL, ECE, "
                                    "corruption accuracy and time. Rerun to resume.")
    te.add_argument("data", help="digits, fashion-mnist, imagefolder:PATH or npz:PATH")
    te.add_argument("--arch", action="append", required=True,
                    help="a member's architecture (as for train; NAME.TAG@pretrained[:FILE] fine-tunes); repeat")
    te.add_argument("--out", required=True, help="the ensemble's folder")
    te.add_argument("--init", action="append", help="per member, in --arch order: a run directory or weights file")
    te.add_argument("--eval-data", help="also evaluate on this split (default: DATA:test for digits/fashion-mnist)")
    te.add_argument("--json", action="store_true", help="print the report as JSON")
    te.add_argument("-q", "--quiet", action="store_true", help="no progress")
    add_dataclass_args(te, TeachConfig)
    add_dataclass_args(te.add_argument_group("optimisation of every member"), TrainConfig,  # type: ignore[arg-type]
                       defaults=TEACH_TRAIN_DEFAULTS)
    te.set_defaults(func=_cmd_teach)

    d = sub.add_parser("demo", help="end to end on bundled digits: teacher ensemble, reinforcement, ERM vs DR student",
                       description="Train a small teacher ensemble on scikit-learn digits, reinforce the training "
                                   "split, train a student with ERM and with DR and compare them. Cached: rerunning "
                                   "skips finished steps.")
    d.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    d.add_argument("--teacher-epochs", type=int, default=30)
    d.add_argument("--num-augs", type=int, default=32)
    d.add_argument("--student-epochs", type=int, default=30)
    d.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    d.set_defaults(func=_cmd_demo)

    from .cli_eval import add_eval_commands

    add_eval_commands(sub)
    from .cli_synth import add_synth_commands

    add_synth_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except DrkitError as e:
        print(f"drkit {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ndrkit {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

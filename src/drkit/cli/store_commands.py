"""The store subcommands of the ``drkit`` command line (registered by :mod:`drkit.cli.main`):

    drkit reinforce DATA --teacher SPEC [--teacher SPEC ...] --out STORE [--json] [options]
    drkit info STORE [--json]
    drkit verify STORE [--data DATA [--only-matching]] [--json]
    drkit export STORE --out DIR [--repo-id ORG/NAME [--push [--private]]] [--json]

The library computes (:func:`drkit.reinforcement.engine.reinforce`, :class:`drkit.reinforcement.store.Store`);
this module only parses and prints.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from ..data import load_dataset
from ..errors import ConfigError, DrkitError
from ..reinforcement.config import ReinforceConfig
from ..reinforcement.engine import reinforce
from ..reinforcement.export import export_store, push_folder
from ..reinforcement.matching import SampleMismatchError
from ..reinforcement.ray_engine import RayOptions
from ..reinforcement.store import Store
from ..teach import teacher_summary
from .args import add_dataclass_args, config_from_args, human_bytes
from .common import DATA_HELP, add_command, add_json_flag, print_json, status

__all__ = ["add_store_commands"]

def _print_reinforced(store: Store, wall_seconds: float) -> None:
    stats = store.run_stats or {}
    s = store.summary()
    records = s["num_samples"] * s["num_augs"]
    source = stats.get("source_bytes")
    print(f"\nreinforced {s['dataset']['name']} -> {store.root}")
    print(f"  records           {records:,} ({s['num_samples']:,} samples × {s['num_augs']} augmentations), "
          f"policy {s['policy']}, top-{s['topk']}{' (dense)' if s['dense'] else ''}")
    print(f"  store size        {human_bytes(s['bytes'])} = {s['bytes_per_record']:.1f} bytes per stored "
          f"augmentation ({s['record_bytes']} per record + shard headers)")
    if source:
        print(f"  overhead          {s['bytes'] / source:.2%} of the source dataset ({human_bytes(source)})")
    if stats.get("records_computed"):
        print(f"  computed          {stats['records_computed']:,} records in {stats['seconds']:.1f} s "
              f"({stats['records_per_s']:.0f} images/s)"
              + (f" on {stats['workers']} Ray workers" if stats.get("engine") == "ray" else ""))
    else:
        print("  computed          nothing: the store was already complete")
    print(f"  wall time         {wall_seconds:.1f} s")


def _cmd_reinforce(args: argparse.Namespace) -> int:
    config = config_from_args(ReinforceConfig, args)
    ray_options = config_from_args(RayOptions, args)
    if args.engine != "ray" and ray_options != RayOptions():
        raise ConfigError("--address, --workers, --gpus-per-worker and --cpus-per-worker need --engine ray")
    if not args.quiet:  # what is known of the teachers, before hours are spent on them
        status(args, "\n  ".join(["teachers", *teacher_summary(args.teacher)]))
    t0 = time.perf_counter()
    store = reinforce(args.data, args.teacher, args.out, config, progress=not args.quiet, download=args.download,
                      engine=args.engine, ray_options=ray_options if args.engine == "ray" else None)
    wall = time.perf_counter() - t0
    if args.json:
        print_json({**store.summary(), "run_stats": store.run_stats or {}, "wall_seconds": wall})
    else:
        _print_reinforced(store, wall)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    store = Store.open(args.store, verify=False)
    s = store.summary()
    if args.json:
        print_json(s)
        return 0
    d = s["dataset"]
    print(f"store        {s['path']} (schema v{s['schema_version']})")
    print(f"dataset      {d['name']}: {d['length']:,} samples, {d['num_classes']} classes, images {d['image_shape']}")
    print(f"policy       {s['policy']}")
    members = ", ".join(m.get("spec", m.get("class", "?")) for m in s["teacher"]["members"])
    print(f"teacher      {members} (T={s['teacher']['temperature']})")
    print(f"records      {s['num_augs']} augmentations × top-{s['topk']}{' (dense)' if s['dense'] else ''}, "
          f"seed {s['seed']}")
    print(f"size         {human_bytes(s['bytes'])} in {s['shards']} shards, {s['bytes_per_record']:.1f} B per augmentation")
    keys = s["sample_keys"]
    print(f"sample keys  {keys['scheme'] + ' (+ content hash and label)' if keys else 'none: replays by position only'}")
    return 0


def _print_match(match: dict[str, Any]) -> None:
    if match["by"] != "key":
        return
    print(f"  matched by sample key: {match['matched']:,} of {match['store_samples']:,} store samples "
          f"({match['data_samples']:,} in the data)")
    for kind, what in (("missing_in_data", "missing from the data"), ("missing_in_store", "not in the store"),
                       ("changed", "changed (same key, other pixels or label)")):
        if match[kind]:
            eg = ", ".join(repr(k) for k in match["examples"].get(kind, []))
            print(f"  {match[kind]:>8,} {what}, e.g. {eg}")


def _cmd_verify(args: argparse.Namespace) -> int:
    if args.only_matching and not args.data:
        raise ConfigError("--only-matching needs --data (the copy of the dataset to match)")
    checked = ["checksums", "records"] + (["dataset fingerprint"] if args.data else [])
    result: dict[str, Any] = {"store": str(args.store), "data": args.data, "checked": checked}
    try:
        store = Store.open(args.store)
        dataset = load_dataset(args.data, download=args.download) if args.data else None
        report = store.verify(dataset, only_matching=args.only_matching)
    except DrkitError as e:
        match = e.match.report() if isinstance(e, SampleMismatchError) else None
        if args.json:  # the verdict on stdout; the error line and exit code come from main
            print_json({**result, "ok": False, "error": str(e), "error_type": type(e).__name__,
                        **({"match": match} if match else {})})
        elif match:
            _print_match(match)
        raise
    if report.get("match", {}).get("by") == "key":
        checked[-1] = "samples matched by key"
    if args.json:
        print_json({**result, "ok": True, **report})
    else:
        print(f"OK: {store.root}: {report['shards']} shards, {report['records']:,} records "
              f"({', '.join(checked[:-1])} and {checked[-1]} verified)")
        if "match" in report:
            _print_match(report["match"])
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    if args.push and not args.repo_id:
        raise ConfigError("--push needs --repo-id ORG/NAME (the Hugging Face dataset repository)")
    if args.private and not args.push:
        raise ConfigError("--private is for --push")
    out = export_store(args.store, args.out, repo_id=args.repo_id)
    url = push_folder(out, args.repo_id, private=args.private) if args.push else None
    if args.json:
        print_json({"store": str(args.store), "out": str(out), "repo_id": args.repo_id, "pushed": url is not None,
                    "url": url, "files": sorted(p.name for p in out.iterdir())})
    else:
        print(f"exported {args.store} -> {out} (store files + README.md dataset card)")
        if url:
            print(f"pushed to https://huggingface.co/datasets/{args.repo_id} ({url})")
        else:
            print(f"publish it: rerun with --repo-id ORG/NAME --push, or `hf upload ORG/NAME {out} --repo-type dataset`")
    return 0


def add_store_commands(sub: Any) -> None:
    """Add ``reinforce``, ``info``, ``verify`` and ``export`` to the ``drkit`` subparsers ``sub``."""
    r = add_command(sub, "reinforce", help="reinforce a dataset with a teacher ensemble",
                    description="Augment every sample NUM_AUGS times, run the teacher ensemble once per view "
                                "and store the parameters + top-k probabilities. Rerun to resume.")
    r.add_argument("data", help=DATA_HELP)
    r.add_argument("--teacher", action="append", required=True,
                   help="ensemble:DIR (drkit teach), run:DIR, timm:NAME@CKPT, timm:NAME.TAG@pretrained[:FILE] (only if "
                        "its head has your classes), torchscript:PATH or python:MODULE:CALLABLE (these two run code); "
                        "repeat for an ensemble")
    r.add_argument("--out", required=True, help="store directory (created; resumed if it holds the same settings)")
    r.add_argument("--download", action="store_true", help="allow downloading the dataset (torchvision)")
    add_json_flag(r, "the store's summary and run statistics")
    add_dataclass_args(r, ReinforceConfig)
    r.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process; ray: Ray workers, same store (pip install 'drkit[ray]'; docs/distributed.md)")
    add_dataclass_args(r.add_argument_group("Ray engine (--engine ray)"), RayOptions,  # type: ignore[arg-type]
                       skip=("max_restarts", "shard_attempts", "runtime_env"))
    r.set_defaults(func=_cmd_reinforce)

    i = add_command(sub, "info", help="describe a store")
    i.add_argument("store")
    add_json_flag(i, "the store's summary")
    i.set_defaults(func=_cmd_info)

    v = add_command(sub, "verify", help="check a store's checksums and records, optionally against its dataset",
                    description="Check every shard's checksum, dtype and shape and the stored probabilities; with "
                                "--data also the dataset's length, labels and content (its fingerprint), or, for "
                                "another copy of the data, which samples match the store's by key and content "
                                "(counts and example keys). A failed check exits 1.")
    v.add_argument("store")
    v.add_argument("--data", help="the dataset it was made from, or another copy of it (matched by sample key)")
    v.add_argument("--only-matching", action="store_true",
                   help="with --data: pass when some samples match by key (missing or changed ones are reported)")
    v.add_argument("--download", action="store_true", help="allow downloading the dataset (torchvision)")
    add_json_flag(v, "what was checked and the verdict (ok, or the error)")
    v.set_defaults(func=_cmd_verify)

    e = add_command(sub, "export", help="a store as a folder for a Hugging Face dataset repository",
                    description="Verify STORE, copy its files into --out with a README.md dataset card (source "
                                "dataset and fingerprint, teachers, policy, sizes, sample-key scheme, how to open it "
                                "against your own copy of the data); with --push upload it (huggingface_hub; needs "
                                "the network and a token). docs/sharing.md")
    e.add_argument("store")
    e.add_argument("--out", required=True, help="new or empty folder to write")
    e.add_argument("--repo-id", help="ORG/NAME of the Hugging Face dataset repository (named in the card)")
    e.add_argument("--push", action="store_true", help="upload --out to --repo-id (created if needed)")
    e.add_argument("--private", action="store_true", help="with --push: create the repository private")
    add_json_flag(e, "the folder written, its files and the push")
    e.set_defaults(func=_cmd_export)

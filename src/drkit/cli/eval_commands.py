"""The evaluation subcommands of the ``drkit`` command line (registered by :mod:`drkit.cli.main`):

    drkit eval RUN [--data DATA] [--json] [--out FILE] [--reference RUN] [--ood-data DATA] [--certify]
    drkit compare RUN... --out REPORT [--data DATA] [--reference RUN] [--json]
    drkit audit STORE --data DATA [--out DIR] [--source store|teacher] [--json]

The library computes (``drkit.evaluate``, ``drkit.evaluate.report``, ``drkit.evaluate.audit``); this module only
parses and prints.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..data import load_dataset
from ..evaluate.audit import audit_store, write_audit_report
from ..evaluate.certify import CertifyConfig
from ..evaluate.corruptions import BACKENDS
from ..evaluate.evaluation import evaluate_run, load_evaluation
from ..evaluate.report import compare
from .common import add_bool_flag, add_command, add_json_flag, print_json

__all__ = ["add_eval_commands"]


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.2%}"


def _num(v: float | None, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _eval_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    certify = None
    if args.certify:
        radii = tuple(float(r) for r in args.certify_radii.split(",") if r.strip())
        certify = CertifyConfig(sigma=args.certify_sigma, n0=args.certify_n0, n=args.certify_n,
                                alpha=args.certify_alpha, num_samples=args.certify_samples, radii=radii,
                                seed=args.seed)
    return {"store": args.store, "teacher": args.teacher, "corruptions": args.corruptions, "shifts": args.shifts,
            "robustness_samples": args.robustness_samples, "ood_data": args.ood_data, "certify": certify,
            "calibration_data": args.calibration_data,
            "seed": args.seed, "batch_size": args.batch_size, "device": args.device, "backend": args.backend,
            "progress": not args.quiet, "trust_store_teachers": args.trust_store_teachers}


def _data(args: argparse.Namespace) -> Any:
    return load_dataset(args.data, download=args.download) if args.data else None


def _print_eval(r: dict[str, Any]) -> None:
    m = r["metrics"]
    print(f"run           {r['run']['path']} ({r['label']}) on {r['data']} ({r['num_samples']:,} images)")
    print(f"accuracy      top-1 {_pct(m['top1'])}  top-5 {_pct(m['top5'])}")
    print(f"calibration   NLL {_num(m['nll'])}  Brier {_num(m['brier'])}  ECE {_num(m['ece'])}  "
          f"adaptive ECE {_num(m['adaptive_ece'])}")
    pcs = sorted((v, c) for c, v in r["per_class_accuracy"].items() if v is not None)
    print("per class     worst " + ", ".join(f"{c} {_pct(v)}" for v, c in pcs[:3]))
    if r.get("teacher"):
        t = r["teacher"]
        print(f"teacher       agreement {_pct(t['agreement'])} (teacher top-1 {_pct(t['top1'])}, ECE {_num(t['ece'])})")
    rob = r.get("robustness")
    if rob:
        line = f"robustness    corruption acc. {_pct(rob['mean_corruption_accuracy'])}"
        if rob.get("mce") is not None:
            line += f"  mCE {_num(rob['mce'])} (relative {_num(rob.get('relative_mce'))}) vs {rob['reference']}"
        line += "".join(f"  {n} {_pct(v)}" for n, v in rob["mean_shift_accuracy"].items())
        print(line + f"   [{rob['samples']:,} images]")
        for name, rows in {**rob["corruptions"], **rob["shifts"]}.items():
            print(f"  {name:<18}" + " ".join(f"{100 * x['top1']:5.1f}" for x in rows))
    if r.get("calibration"):
        c = r["calibration"]
        print(f"calibration   T = {c['temperature']:.3f} fitted on {c['data']} ({c['num_samples']:,} images): "
              f"ECE {_num(c['ece_before'])} -> {_num(c['ece_after'])}, NLL {_num(c['nll_before'])} -> {_num(c['nll_after'])}")
    if r.get("ood"):
        o = r["ood"]
        print(f"OOD           {o['data']}: AUROC max-p {_num(o['auroc_max_prob'])}, entropy {_num(o['auroc_entropy'])}; "
              f"mean entropy OOD {_num(o['entropy_out'])} vs in-dist. {_num(o['entropy_in'])} nats")
    if r.get("certify"):
        c = r["certify"]
        acc = "  ".join(f"r={k} {_pct(v)}" for k, v in c["certified_accuracy"].items())
        print(f"certified     σ={c['sigma']:g}, n={c['n']}, {len(c['indices'])} images: {acc} "
              f"(abstain {_pct(c['abstain_rate'])})")


def _cmd_eval(args: argparse.Namespace) -> int:
    reference: Any = args.reference
    if reference and reference.endswith(".json"):
        reference = load_evaluation(reference)
    r = evaluate_run(args.run, _data(args), reference=reference, **_eval_kwargs(args))
    text = json.dumps(r, indent=2, allow_nan=False)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if args.json:
        print(text)
    else:
        _print_eval(r)
        if args.out:
            print(f"saved         {args.out}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    res = compare(args.runs, args.out, data=_data(args), reference=args.reference, title=args.title,
                  **_eval_kwargs(args))
    if args.json:
        print_json(res)
        return 0
    rows = res["rows"]
    print(f"\n{'run':<34}{'top-1':>8}{'NLL':>8}{'ECE':>8}{'corr.':>8}{'mCE':>7}")
    for row in rows:
        print(f"{row['label'][:33]:<34}{_pct(row['top1']):>8}{_num(row['nll']):>8}{_num(row['ece']):>8}"
              f"{_pct(row['mca']):>8}{_num(row['mce'], 2):>7}")
    p = res["paths"]
    print(f"\nreport  {p['html']}\n        {p['markdown']}\n        {p['json']}")
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    data = load_dataset(args.data, download=args.download)
    r = audit_store(args.store, data, source=args.source, top=args.top, teacher=args.teacher,
                    trust_store_teachers=args.trust_store_teachers)
    out = args.out or f"{str(args.store).rstrip('/')}-audit"
    paths = write_audit_report(r, data, out)
    if args.json:
        print_json({**r, "paths": paths})
        return 0
    m = r["metrics"]
    print(f"teacher of {r['store']} vs the labels of {r['data']} ({r['num_samples']:,} samples, {r['source']})")
    print(f"  agreement {_pct(r['agreement'])}  mean confidence {_pct(r['mean_confidence'])}  "
          f"over-confidence {r['overconfidence']:+.3f}  ECE {_num(m['ece'])}  NLL {_num(m['nll'])}")
    worst = sorted((v, c) for c, v in r["per_class_agreement"].items() if v is not None)[:3]
    print("  lowest per-class agreement: " + ", ".join(f"{c} {_pct(v)}" for v, c in worst))
    if r["confusions"]:
        print("  top confusions: " + ", ".join(f"{c['label']}→{c['teacher']} ×{c['count']}" for c in r["confusions"][:5]))
    print(f"  {len(r['disagreements'])} most confident disagreements in the gallery: {paths['html']}")
    return 0


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="evaluation data (default: the run's eval data, e.g. digits:test)")
    p.add_argument("--store", help="reinforced store: its teachers give the teacher-agreement numbers")
    p.add_argument("--teacher", action="append", help="teacher spec for agreement (instead of --store's); repeatable")
    p.add_argument("--trust-store-teachers", action="store_true",
                   help="load the teachers a --store names (they may be code: only for stores you trust)")
    add_bool_flag(p, "--corruptions", default=True, help="accuracy under generated corruptions")
    add_bool_flag(p, "--shifts", default=True, help="accuracy along the rotation and translation sweeps")
    p.add_argument("--robustness-samples", type=int, help="evenly spaced images for corruptions/shifts (default: all)")
    p.add_argument("--ood-data", help="out-of-distribution data (e.g. digits against a Fashion-MNIST model)")
    p.add_argument("--calibration-data", help="a held-out split (not --data) to fit a softmax temperature on: "
                   "reports ECE and NLL before and after temperature scaling")
    p.add_argument("--certify", action="store_true", help="randomized-smoothing certified accuracy (slow: a subset)")
    d = CertifyConfig()
    p.add_argument("--certify-sigma", type=float, default=d.sigma, help="noise σ")
    p.add_argument("--certify-n0", type=int, default=d.n0, help="selection samples")
    p.add_argument("--certify-n", type=int, default=d.n, help="estimation samples")
    p.add_argument("--certify-alpha", type=float, default=d.alpha, help="failure probability")
    p.add_argument("--certify-samples", type=int, default=d.num_samples, help="images certified")
    p.add_argument("--certify-radii", default=",".join(f"{r:g}" for r in d.radii), help="comma-separated L2 radii")
    p.add_argument("--seed", type=int, default=0, help="seed of corruptions and certification noise")
    p.add_argument("--batch-size", type=int, default=512, help="images per forward pass")
    p.add_argument("--device", help="cuda, mps or cpu (default: best available)")
    p.add_argument("--backend", choices=BACKENDS, default="torch",
                   help="corruption generator (imagecorruptions: RGB images >= 32 px, pip install drkit[corruptions])")
    p.add_argument("--download", action="store_true", help="allow downloading the dataset (torchvision)")


def add_eval_commands(sub: Any) -> None:
    """Add ``eval``, ``compare`` and ``audit`` to the ``drkit`` subparsers ``sub``."""
    e = add_command(sub, "eval", help="evaluate a run: accuracy, calibration, robustness, OOD, certification",
                       description="Top-1/top-5, NLL, Brier, ECE, adaptive ECE, per-class accuracy; accuracy under "
                                   "generated corruptions and shifts; optional OOD detection and certified accuracy.")
    e.add_argument("run", help="run directory written by `drkit train`")
    add_json_flag(e, "the full result")
    e.add_argument("--out", help="also save the JSON result to this file (usable by `drkit compare`)")
    e.add_argument("--reference", help="run (or saved evaluation .json) to compute mCE against")
    _add_common(e)
    e.set_defaults(func=_cmd_eval)

    c = add_command(sub, "compare", help="side-by-side report of runs (HTML + Markdown + JSON)",
                       description="Evaluate runs on the same data and write REPORT/report.html (self-contained), "
                                   "report.md with plots/*.png, and report.json.")
    c.add_argument("runs", nargs="+", help="run directories, or evaluations saved with `drkit eval --out`")
    c.add_argument("--out", required=True, help="report directory")
    c.add_argument("--reference", help="the run mCE is relative to (default: the first)")
    c.add_argument("--title", default="drkit comparison", help="report title")
    add_json_flag(c, "the rows and the report's paths")
    _add_common(c)
    c.set_defaults(func=_cmd_compare)

    a = add_command(sub, "audit", help="check a store's teacher against the original labels",
                       description="Per-class agreement, the teacher's calibration against the labels and a "
                                   "gallery of its most confident disagreements, for human verification.")
    a.add_argument("store", help="reinforced store directory")
    a.add_argument("--data", required=True, help="the dataset the store was made from")
    a.add_argument("--out", help="report directory (default: STORE-audit)")
    a.add_argument("--source", choices=("store", "teacher"), default="store",
                   help="stored soft labels (default) or the store's teachers rerun on clean images")
    a.add_argument("--top", type=int, default=32, help="disagreements in the gallery")
    a.add_argument("--teacher", action="append", help="--source teacher: the teachers to rerun (repeat)")
    a.add_argument("--trust-store-teachers", action="store_true",
                   help="--source teacher: rerun the teachers the store names (they may be code: only for stores "
                        "you trust)")
    add_json_flag(a, "the result and the report's paths")
    a.add_argument("--download", action="store_true", help="allow downloading the dataset (torchvision)")
    a.set_defaults(func=_cmd_audit)

"""How precise is the ECE goal of a finished fmnist_plus run, and how calibrated are its teachers?

Two measurements on the run's saved models (nothing is retrained):

1. each main student's ECE on the test images the report used (the first ``test_samples``), on the
   rest of the 10,000-image test split, and on all of it; and the ECE a *perfectly calibrated* model
   with the same confidences would show on the report's images (labels drawn so that every
   prediction is right with probability equal to its confidence): the estimator's floor, below which
   a measured ECE is noise (and the same on all 10,000 images);
2. the teacher ensemble's NLL, ECE and mean confidence at several member temperatures, on clean
   training images the teachers never saw and on one ``policy`` view of each (the views a store holds).

    python -m benchmarks.fmnist_plus.calibration runs/fmnist_plus-b32-t05

Writes ``calibration.json`` into the run folder and prints the tables (docs/results/fmnist_plus.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

import drkit
from drkit.augment.policies import Policy
from drkit.data import stratified_subset
from drkit.evaluate.calibration import fit_temperature, scale_probs
from drkit.inference import predict_probs
from drkit.metrics import classification_metrics, ece, nll

TEMPERATURES = (0.3, 0.5, 0.7, 1.0, 1.5)


def ece_floor(probs: np.ndarray, *, draws: int = 200, seed: int = 0) -> float:
    """Mean ECE of a model that is calibrated by construction: each top-1 prediction is right with
    probability equal to its confidence (the wrong label is any other class)."""
    rng = np.random.default_rng(seed)
    top = probs.argmax(1)
    conf = probs.max(1)
    values = []
    for _ in range(draws):
        labels = np.where(rng.random(len(conf)) < conf, top, (top + 1) % probs.shape[1])
        values.append(ece(probs, labels))
    return float(np.mean(values))


def cross_fitted_calibration(run_dir: Path, test: Any, *, device: str | None = None, seed: int = 0) -> dict[str, Any]:
    """A student's ECE and NLL before and after temperature scaling, on every test image: each half of
    the test split (stratified) is scaled by the temperature fitted (min NLL) on the *other* half —
    2-fold cross-fitting — so no image is scaled by a temperature fitted on itself and every metric
    still covers all test images. ERM and DR students get exactly the same treatment; the students
    train on all 60,000 training images, so no held-out training image is left for it."""
    model = drkit.load_teacher(f"run:{run_dir}", num_classes=test.num_classes, in_chans=test.image_shape[0])[0]
    probs = predict_probs(model, test, device=torch.device(device) if device else None)
    labels = np.asarray(test.labels)
    first = np.zeros(len(labels), dtype=bool)
    first[stratified_subset(labels, 0.5, seed=seed)] = True
    scaled, temps = np.empty_like(probs), []
    for part in (first, ~first):
        t = fit_temperature([np.log(np.clip(probs[~part], 1e-12, None))], labels[~part])
        scaled[part] = scale_probs(probs[part], t)
        temps.append(t)
    return {"temperatures": temps, "ece_before": ece(probs, labels), "ece_after": ece(scaled, labels),
            "nll_before": nll(probs, labels), "nll_after": nll(scaled, labels)}


def students(out: Path, test: Any, reported: int) -> list[dict[str, Any]]:
    rows = []
    splits = {"report": slice(0, reported), "rest": slice(reported, None), "all": slice(None)}
    if reported >= len(test):  # the run used every test image
        del splits["rest"]
    for f in sorted((out / "arms").glob("main-*.json")):
        arm = json.loads(f.read_text())
        model = drkit.load_teacher(f"run:{arm['run']}", num_classes=test.num_classes, in_chans=test.image_shape[0])[0]
        probs = predict_probs(model, test)
        row = {k: arm[k] for k in ("arch", "mode", "seed")}
        for name, sl in splits.items():
            m = classification_metrics(probs[sl], test.labels[sl])
            # mean confidence - top-1 < 0: under-confident, the direction ECE does not show
            row[name] = {**{k: float(m[k]) for k in ("top1", "nll", "ece")}, "confidence": float(probs[sl].max(1).mean())}
        row["ece_floor_report"] = ece_floor(probs[:reported])
        row["ece_floor_all"] = ece_floor(probs)
        rows.append(row)
        print(f"{row['arch']:24s} {row['mode']:3s} s{row['seed']}  ECE "
              + "  ".join(f"{name} {row[name]['ece']:.4f}" for name in splits)
              + f"  floor: report {row['ece_floor_report']:.4f}, all {row['ece_floor_all']:.4f}"
              + f"  confidence - top-1 (all) {row['all']['confidence'] - row['all']['top1']:+.3f}", flush=True)
    if not rows:
        raise SystemExit(f"{out / 'arms'} holds no finished main students (main-*.json): run "
                         "benchmarks/fmnist_plus/fmnist_harness.py with this --out first")
    return rows


def ratios(rows: list[dict[str, Any]], split: str) -> dict[str, float]:
    """ECE(DR) / ECE(ERM) per architecture (seed means), the goal's mean of them and the ratio of means."""
    out: dict[str, float] = {}
    dr_all, erm_all = [], []
    for arch in sorted({r["arch"] for r in rows}):
        e = {m: float(np.mean([r[split]["ece"] for r in rows if r["arch"] == arch and r["mode"] == m]))
             for m in ("erm", "dr")}
        out[arch] = e["dr"] / e["erm"]
        dr_all.append(e["dr"])
        erm_all.append(e["erm"])
    out["mean of ratios"] = float(np.mean(list(out.values())))
    out["ratio of means"] = float(np.mean(dr_all) / np.mean(erm_all))
    return out


def teachers(out: Path, profile: dict[str, Any], held_out: int = 2000) -> dict[str, Any]:
    full = drkit.load_dataset("fashion-mnist")
    used = stratified_subset(full.labels, profile["train_samples"] / len(full), seed=0)  # the harness's training images
    rest = np.setdiff1d(np.arange(len(full)), used)
    pick = rest[stratified_subset(full.labels[rest], held_out / len(rest), seed=1)]
    raw = torch.from_numpy(full.images[pick])
    labels = full.labels[pick]
    policy = Policy(profile["policy"], tuple(raw.shape[1:]))
    views = torch.stack([policy.apply_base(raw[i], policy.sample_base(0, int(i), 0)) for i in range(len(raw))])
    members = [drkit.load_teacher(f"run:{d}", num_classes=full.num_classes, in_chans=raw.shape[1])[0].eval()
               for d in sorted((out / "teachers-fmnist").iterdir())]
    result: dict[str, Any] = {"held_out_images": len(pick), "policy": profile["policy"]}
    for name, x in (("clean", raw.float() / 255), ("view", views)):
        with torch.no_grad():
            logits = [torch.cat([m(x[i:i + 500]).float() for i in range(0, len(x), 500)]) for m in members]
        result[name] = {}
        for t in TEMPERATURES:
            p = (sum(torch.softmax(z / t, -1) for z in logits) / len(logits)).numpy()
            m = classification_metrics(p, labels)
            result[name][str(t)] = {"top1": float(m["top1"]), "nll": float(m["nll"]), "ece": float(m["ece"]),
                                    "confidence": float(p.max(1).mean())}
            print(f"teachers, {name:5s} T={t}: top-1 {m['top1']:.4f}  NLL {m['nll']:.3f}  ECE {m['ece']:.3f}  "
                  f"mean confidence {p.max(1).mean():.3f}", flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path, help="a finished run folder of benchmarks/fmnist_plus/fmnist_harness.py")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    profile = json.loads((args.out / "profile.json").read_text())
    test = drkit.load_dataset("fashion-mnist:test")
    reported = profile["test_samples"] or len(test)
    rows = students(args.out, test, reported)
    result = {"test_images": {"report": reported, "all": len(test)}, "students": rows,
              "ratios": {s: ratios(rows, s) for s in ("report", "rest", "all") if s in rows[0]},
              "teachers": teachers(args.out, profile)}
    for split, r in result["ratios"].items():
        print(f"ECE(DR)/ECE(ERM), {split}: " + ", ".join(f"{k} {v:.3f}" for k, v in r.items()))
    (args.out / "calibration.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Markdown tables for the Fashion-MNIST+ results (mean ± std over seeds) and the goal checks."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

MODES = ("erm", "dr", "kd")


def _ms(values: list[float], pct: bool = False) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "–"
    scale = 100 if pct else 1
    mean = statistics.fmean(vals) * scale
    if len(vals) == 1:
        return f"{mean:.2f}" if pct else f"{mean:.3f}"
    sd = statistics.stdev(vals) * scale
    return f"{mean:.2f} ± {sd:.2f}" if pct else f"{mean:.3f} ± {sd:.3f}"


def _group(rows: list[dict[str, Any]], *keys: str) -> dict[tuple, list[dict[str, Any]]]:
    g: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        g[tuple(r[k] for k in keys)].append(r)
    return g


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.fmean(vals) if vals else None


def goals(res: dict[str, Any]) -> dict[str, Any]:
    """The issue's goals, computed from the results (per-architecture means over seeds)."""
    by = _group(res["students"], "arch", "mode")
    archs = sorted({r["arch"] for r in res["students"]})
    kd_archs = [a for a in archs if by.get((a, "kd"))]  # the full profile runs KD for some students only
    d_top1 = [_mean(by[(a, "dr")], "top1") - _mean(by[(a, "erm")], "top1") for a in archs]
    kd_gain = [_mean(by[(a, "kd")], "top1") - _mean(by[(a, "erm")], "top1") for a in kd_archs]
    dr_on_kd = [_mean(by[(a, "dr")], "top1") - _mean(by[(a, "erm")], "top1") for a in kd_archs]
    ece_ratio = [_mean(by[(a, "dr")], "ece") / max(_mean(by[(a, "erm")], "ece"), 1e-12) for a in archs]
    time_ratio = [_mean(by[(a, "dr")], "train_seconds") / _mean(by[(a, "kd")], "train_seconds") for a in kd_archs]
    lim = _group(res["limited"], "mode")
    lim_gain = _mean(lim[("dr",)], "top1") - _mean(lim[("erm",)], "top1")
    mean_kd = statistics.fmean(kd_gain) if kd_gain else 0.0
    return {
        "dr_minus_erm_top1": statistics.fmean(d_top1),
        "ece_dr_over_erm": statistics.fmean(ece_ratio),
        "dr_share_of_kd_gain": statistics.fmean(dr_on_kd) / mean_kd if mean_kd > 0 else None,
        "dr_over_kd_wall_time": statistics.fmean(time_ratio) if time_ratio else None,
        "limited_dr_minus_erm_top1": lim_gain,
    }


def per_arch(res: dict[str, Any]) -> list[dict[str, Any]]:
    """DR − ERM per architecture (seed means): top-1, corruption accuracy, ECE of both, and KD's top-1 gain
    and DR/KD training-time ratio where a KD arm ran; the calibrated ECEs when measured."""
    by = _group(res["students"], "arch", "mode")
    rows = []
    for a in sorted({r["arch"] for r in res["students"]}):
        erm, dr, kd = by[(a, "erm")], by[(a, "dr")], by.get((a, "kd"), [])
        row = {"arch": a, "erm_top1": _mean(erm, "top1"), "dr_top1": _mean(dr, "top1"),
               "d_top1": _mean(dr, "top1") - _mean(erm, "top1"),
               "d_mca": (_mean(dr, "mca") - _mean(erm, "mca")) if _mean(erm, "mca") is not None else None,
               "erm_ece": _mean(erm, "ece"), "dr_ece": _mean(dr, "ece"),
               "kd_gain": _mean(kd, "top1") - _mean(erm, "top1") if kd else None,
               "dr_over_kd_time": _mean(dr, "train_seconds") / _mean(kd, "train_seconds") if kd else None}
        if all("calibrated" in r for r in erm + dr):
            row["erm_ece_scaled"] = statistics.fmean(r["calibrated"]["ece_after"] for r in erm)
            row["dr_ece_scaled"] = statistics.fmean(r["calibrated"]["ece_after"] for r in dr)
        rows.append(row)
    return rows


def full_goals(res: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """The goals of the issue "Fashion-MNIST+ at full scale": (goal, measured, met)."""
    rows = per_arch(res)
    d = [r["d_top1"] for r in rows]
    kd = [r for r in rows if r["kd_gain"] is not None]
    share = (statistics.fmean(r["d_top1"] for r in kd) / statistics.fmean(r["kd_gain"] for r in kd)
             if kd and statistics.fmean(r["kd_gain"] for r in kd) > 0 else None)
    times = [r["dr_over_kd_time"] for r in kd]
    mca = [r["d_mca"] for r in rows if r["d_mca"] is not None]
    lim = _group(res["limited"], "mode")
    lim_gain = _mean(lim[("dr",)], "top1") - _mean(lim[("erm",)], "top1")
    return [
        ("DR − ERM top-1 ≥ +0.3 on every architecture, mean ≥ +1.0",
         f"min {100 * min(d):+.2f}, mean {100 * statistics.fmean(d):+.2f}",
         min(d) >= 0.003 and statistics.fmean(d) >= 0.01),
        ("corruption accuracy DR − ERM ≥ 0 on every architecture",
         f"min {100 * min(mca):+.2f}" if mca else "–", min(mca) >= 0 if mca else None),
        ("ECE(DR) < ECE(ERM) on every architecture, no post-hoc scaling",
         ", ".join(f"{r['dr_ece']:.3f} vs {r['erm_ece']:.3f}" for r in rows),
         all(r["dr_ece"] < r["erm_ece"] for r in rows)),
        ("DR reaches ≥ 90 % of online KD's gain (KD architectures)",
         "–" if share is None else f"{100 * share:.0f} %", None if share is None else share >= 0.9),
        ("DR epoch time ≤ 1/3 of KD's", ", ".join(f"{x:.2f}" for x in times) or "–",
         all(x <= 1 / 3 for x in times) if times else None),
        ("limited data (10 %): DR − ERM ≥ +3", f"{100 * lim_gain:+.2f}", lim_gain >= 0.03),
    ]


def render_full(res: dict[str, Any]) -> list[str]:
    """The full profile's sections: per-architecture deltas, the guideline arms, calibration, its goals."""
    out = ["### DR − ERM per architecture (seed means)", "",
           "| arch | ERM top-1 % | DR top-1 % | DR − ERM | corruption DR − ERM | ECE ERM → DR | "
           "ECE after scaling ERM → DR | KD gain | DR / KD train time |", "|---|---|---|---|---|---|---|---|---|"]
    for r in per_arch(res):
        scaled = (f"{r['erm_ece_scaled']:.3f} → {r['dr_ece_scaled']:.3f}" if "erm_ece_scaled" in r else "–")
        out.append(f"| {r['arch']} | {100 * r['erm_top1']:.2f} | {100 * r['dr_top1']:.2f} | {100 * r['d_top1']:+.2f} | "
                   + ("–" if r["d_mca"] is None else f"{100 * r['d_mca']:+.2f}")
                   + f" | {r['erm_ece']:.3f} → {r['dr_ece']:.3f} | {scaled} | "
                   + ("–" if r["kd_gain"] is None else f"{100 * r['kd_gain']:+.2f}") + " | "
                   + ("–" if r["dr_over_kd_time"] is None else f"{r['dr_over_kd_time']:.2f}") + " |")
    out += ["", "ECE after scaling: each half of the test split scaled by the temperature fitted on the other "
            "half (2-fold cross-fitting, all test images; the same for ERM and DR).", ""]
    if res.get("guideline"):
        out += ["### The smallest student: reinforcement difficulty (the paper's second guideline)", "",
                "| variant | top-1 % | NLL | ECE | corruption acc % |", "|---|---|---|---|---|"]
        for (variant,), rows in _group(res["guideline"], "variant").items():
            out.append(f"| {variant} | {_ms([r['top1'] for r in rows], True)} | {_ms([r['nll'] for r in rows])} | "
                       f"{_ms([r['ece'] for r in rows])} | {_ms([r.get('mca') for r in rows], True)} |")
        out.append("")
    out += ["### Goals (issue \"Fashion-MNIST+ at full scale\")", "", "| goal | measured | met |", "|---|---|---|"]
    out += [f"| {g} | {m} | {'–' if ok is None else ('met' if ok else 'missed')} |" for g, m, ok in full_goals(res)]
    return out + [""]


def render(res: dict[str, Any], *, command: str, plots_dir: str | None = None) -> str:
    p = res["profile"]
    out = [f"Command: `{command}` — profile: {p['train_samples'] or 60000} training / "
           f"{p['test_samples'] or 10000} test images, policy `{p['policy']}`"
           f"{f' (teachers trained with `{tp}`)' if (tp := p.get('teacher_policy')) else ''}, {p['num_augs']} stored "
           f"augmentations, top-{p['topk']}{f', teacher temperature {t:g}' if (t := p.get('temperature', 1.0)) != 1 else ''}, "
           f"{p['student_epochs']} student epochs at batch {p.get('batch_size', 128)}, seeds {list(p['seeds'])}.", ""]
    if secs := res.get("arm_seconds"):
        out += [f"Compute time of all {len(secs)} arms (a cold run on this machine; reruns skip finished arms): "
                f"{sum(secs.values()) / 60:.0f} min.", ""]

    t = res["teachers"]
    out += ["### Teacher ensemble", "", "| member | top-1 % | NLL | ECE | train s |", "|---|---|---|---|---|"]
    for m in t["members"]:
        out.append(f"| {m['arch']} | {100 * m['top1']:.2f} | {m['nll']:.3f} | {m['ece']:.3f} | {m['train_seconds']:.0f} |")
    e = t["ensemble"]
    out += [f"| **ensemble** | **{100 * e['top1']:.2f}** | {e['nll']:.3f} | {e['ece']:.3f} | |", ""]
    if "mca" in e:  # what its students can inherit: compare with the students' corruption and shift columns
        out += [f"Ensemble under corruptions: {100 * e['mca']:.2f} % (mean over corruptions and severities); "
                f"under shifts: {100 * e['shift_acc']:.2f} %.", ""]

    s = res["store"]
    rs = s.get("run_stats") or {}
    out += ["### Store", "",
            f"{s['num_samples']:,} samples × {s['num_augs']} augmentations, {s['bytes'] / 2**20:.1f} MiB "
            f"({s['bytes_per_record']:.1f} B per augmentation), {s['bytes'] / res['data']['train_bytes']:.0%} of the "
            f"source images; reinforced in {rs.get('seconds', float('nan')):.0f} s "
            f"({rs.get('records_per_s', float('nan')):.0f} views/s).", ""]
    choice = s.get("choice") or {}
    if "mass" in choice:
        out += ["Why this top-k and number of augmentations: the teacher mass a smaller k would keep, against its "
                "bytes per record (same policy):", "",
                "| top-k | " + " | ".join(str(k) for k in choice["k"]) + " |",
                "|---|" + "---|" * len(choice["k"]),
                "| mean teacher mass kept | " + " | ".join(f"{100 * m:.1f} %" for m in choice["mass"]) + " |",
                "| bytes per record | " + " | ".join(str(b) for b in choice["bytes_per_record"]) + " |", "",
                f"The store keeps top-{p['topk']} of {choice['k'][-1]} classes; at k = classes no class ids are "
                "stored and densification is exact. The table says what a smaller k would save and lose. "
                f"{s['num_augs']} augmentations for {p['student_epochs']} student epochs: a fresh view every "
                "epoch (fewer repeat views, more cost nothing at training time); storage grows linearly with it.",
                ""]

    out += ["### Students (mean ± std over seeds)", "",
            "| arch | mode | top-1 % | NLL | ECE | Brier | corruption acc % | shift acc % | train s |",
            "|---|---|---|---|---|---|---|---|---|"]
    for (arch, mode), rows in sorted(_group(res["students"], "arch", "mode").items(),
                                     key=lambda kv: (kv[0][0], MODES.index(kv[0][1]))):
        out.append(f"| {arch} | {mode.upper()} | {_ms([r['top1'] for r in rows], True)} | "
                   f"{_ms([r['nll'] for r in rows])} | {_ms([r['ece'] for r in rows])} | {_ms([r.get('brier') for r in rows])} | "
                   f"{_ms([r.get('mca') for r in rows], True)} | {_ms([r.get('shift_acc') for r in rows], True)} | "
                   f"{_ms([r['train_seconds'] for r in rows])} |")
    out.append("")

    out += [f"### Limited data ({100 * p['limited_fraction']:g} % of the training set)", "",
            "| arch | mode | top-1 % | NLL | ECE |", "|---|---|---|---|---|"]
    for (arch, mode), rows in sorted(_group(res["limited"], "arch", "mode").items()):
        out.append(f"| {arch} | {mode.upper()} | {_ms([r['top1'] for r in rows], True)} | "
                   f"{_ms([r['nll'] for r in rows])} | {_ms([r['ece'] for r in rows])} |")
    t = p.get("limited_temperature") or p.get("temperature", 1.0)
    views = (f"a store of its own images with {p['limited_num_augs']} views each, one per epoch, at teacher "
             f"temperature {t:g}"
             if p.get("limited_num_augs") else f"the main store's {p['num_augs']} views of its images")
    out += ["", f"{p['limited_epochs']} epochs; the DR student reads {views}.", ""]

    tr = res.get("transfer") or {"teachers": None, "rows": []}
    if tr["teachers"]:
        out += ["### Transfer: pretrain on Fashion-MNIST(+) → fine-tune on digits(+) (28×28)", "",
                f"digits teacher ensemble: top-1 {100 * tr['teachers']['ensemble']['top1']:.2f} %", "",
                "| pretrained on | fine-tuned on | top-1 % | NLL | ECE |", "|---|---|---|---|---|"]
        names = {"none": "nothing (scratch)", "erm": "Fashion-MNIST (ERM)", "dr": "Fashion-MNIST+ (DR)"}
        for (pre, ft), rows in _group(tr["rows"], "pretrain", "finetune").items():
            out.append(f"| {names[pre]} | {'digits+' if ft == 'dr' else 'digits'} | {_ms([r['top1'] for r in rows], True)} | "
                       f"{_ms([r['nll'] for r in rows])} | {_ms([r['ece'] for r in rows])} |")
        out.append("")

    cmp = res.get("compare")
    if cmp:
        out += ["### Plots (`drkit compare`, first seed)", "",
                f"Full report: `{cmp['dir']}/report.html`; mCE reference: `{Path(cmp['reference']).name}`.", ""]
        if plots_dir:
            out += [f"![{Path(q).stem}]({plots_dir}/{Path(q).name})" for q in cmp["plots"]] + [""]

    if p.get("teach") or res.get("guideline"):
        return "\n".join(out + render_full(res))
    g = goals(res)
    share = g["dr_share_of_kd_gain"]
    out += ["### Goals", "", "| goal | measured | met |", "|---|---|---|",
            f"| DR − ERM top-1, mean over architectures ≥ +1.0 | {100 * g['dr_minus_erm_top1']:+.2f} | "
            f"{'yes' if g['dr_minus_erm_top1'] >= 0.01 else 'no'} |",
            f"| ECE(DR) ≤ ½ ECE(ERM) | ratio {g['ece_dr_over_erm']:.2f} | {'yes' if g['ece_dr_over_erm'] <= 0.5 else 'no'} |",
            f"| DR reaches ≥ 90 % of KD's gain | {'–' if share is None else f'{100 * share:.0f} %'} | "
            f"{'–' if share is None else ('yes' if share >= 0.9 else 'no')} |",
            f"| … at ≤ 1/3 of KD's training time | {g['dr_over_kd_wall_time']:.2f} | "
            f"{'yes' if g['dr_over_kd_wall_time'] <= 1 / 3 else 'no'} |",
            f"| limited data: DR − ERM ≥ +3 | {100 * g['limited_dr_minus_erm_top1']:+.2f} | "
            f"{'yes' if g['limited_dr_minus_erm_top1'] >= 0.03 else 'no'} |", ""]
    return "\n".join(out)

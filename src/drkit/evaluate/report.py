"""``drkit compare RUN... --out REPORT``: side-by-side evaluation of runs as a report.

``REPORT/`` receives

- ``report.html``: one self-contained page (plots inlined as base64 PNGs, inline CSS, no script),
- ``report.md``: the same tables in Markdown, with the plots as ``plots/*.png`` beside it,
- ``report.json``: the numbers behind both — summary rows and every run's full evaluation.

Sections: a summary table (accuracy, calibration, robustness, OOD, certification), bars per
architecture and training mode, reliability diagrams, accuracy by corruption and severity and
along the shift sweeps, and per-class accuracy. mCE is relative to the ``reference`` run (the
first by default), evaluated on the same corrupted images.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from . import plots
from .evaluation import evaluate_run, load_evaluation, to_jsonable
from .formatting import figure_png, fmt_num, fmt_pct, html_page, html_table, img_tag, md_table
from .robustness import mce

__all__ = ["compare", "write_report", "summary_row"]

log = logging.getLogger(__name__)


def summary_row(result: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of one evaluation, flat (what the summary table and bars show)."""
    cfg = result.get("run", {}).get("config", {})
    m, rob, ood = result["metrics"], result.get("robustness") or {}, result.get("ood") or {}
    row: dict[str, Any] = {
        "label": result.get("label", "model"), "arch": cfg.get("arch", "?"), "mode": cfg.get("mode", "?"),
        "top1": m["top1"], "top5": m.get("top5"), "nll": m["nll"], "brier": m["brier"], "ece": m["ece"],
        "adaptive_ece": m.get("adaptive_ece"), "mca": rob.get("mean_corruption_accuracy"),
        "mce": rob.get("mce"), "relative_mce": rob.get("relative_mce"),
        "rotation": (rob.get("mean_shift_accuracy") or {}).get("rotation"),
        "translation": (rob.get("mean_shift_accuracy") or {}).get("translation"),
        "ood_auroc_max_prob": ood.get("auroc_max_prob"), "ood_auroc_entropy": ood.get("auroc_entropy"),
        "ood_entropy": ood.get("entropy_out"), "teacher_agreement": (result.get("teacher") or {}).get("agreement"),
    }
    for r, acc in ((result.get("certify") or {}).get("certified_accuracy") or {}).items():
        row[f"certified@{r}"] = acc
    return row


# (key, header, formatter) of the summary table; a column shows when any run has a value
_COLUMNS = [
    ("top1", "top-1", fmt_pct), ("top5", "top-5", fmt_pct), ("nll", "NLL", fmt_num), ("brier", "Brier", fmt_num),
    ("ece", "ECE", fmt_num), ("adaptive_ece", "adaptive ECE", fmt_num), ("mca", "corruption acc.", fmt_pct),
    ("mce", "mCE", fmt_num), ("relative_mce", "rel. mCE", fmt_num), ("rotation", "rotation acc.", fmt_pct),
    ("translation", "translation acc.", fmt_pct), ("ood_auroc_max_prob", "OOD AUROC (max p)", fmt_num),
    ("ood_auroc_entropy", "OOD AUROC (entropy)", fmt_num), ("ood_entropy", "OOD entropy", fmt_num),
    ("teacher_agreement", "teacher agreement", fmt_pct),
]


def _pick_reference(results: Sequence[dict[str, Any]], reference: int | str | None) -> int:
    if reference is None:
        return 0
    if isinstance(reference, int):
        if not 0 <= reference < len(results):
            raise ConfigError(f"reference index {reference} out of range 0..{len(results) - 1}")
        return reference
    ref = str(reference)
    for i, r in enumerate(results):
        path = r.get("run", {}).get("path")
        if ref in (r.get("label"), path) or (path and Path(path).resolve() == Path(ref).resolve()):
            return i
    raise ConfigError(f"reference {ref!r} is not one of the compared runs; pass one of them (path or label)")


def _with_mce(results: list[dict[str, Any]], ref: int) -> list[str]:
    """Recompute every run's mCE against ``results[ref]``; returns notes for the report."""
    notes = []
    ref_rob = results[ref].get("robustness")
    for r in results:
        rob = r.get("robustness")
        if not rob or not ref_rob or not rob.get("corruptions"):
            continue
        for key in ("mce", "ce", "relative_mce", "relative_ce"):
            rob.pop(key, None)
        try:
            rob.update(mce(rob, ref_rob, clean_error=1 - rob["clean_top1"],
                           reference_clean_error=1 - ref_rob["clean_top1"]))
            rob["reference"] = results[ref].get("label")
        except ConfigError as e:
            notes.append(f"no mCE for {r.get('label')}: {e}")
    return notes


def _sections(results: list[dict[str, Any]], rows: list[dict[str, Any]], ref: int,
              notes: list[str]) -> list[tuple[str, str, list[tuple[list[str], list[list[Any]]]], list[tuple[str, Any]]]]:
    """``(title, note, tables, figures)`` of each report section, shared by HTML and Markdown."""

    labels = [r["label"] for r in rows]
    cols = [c for c in _COLUMNS if any(row.get(c[0]) is not None for row in rows)]
    cert = sorted({k for row in rows for k in row if k.startswith("certified@")}, key=lambda k: float(k.split("@")[1]))
    headers = ["run", *[h for _, h, _ in cols], *[f"certified acc. r={k.split('@')[1]}" for k in cert]]
    table = [[row["label"], *[f(row.get(k)) for k, _, f in cols], *[fmt_pct(row.get(k)) for k in cert]]
             for row in rows]
    first = results[0]
    note = (f"Data: {first['data']} ({first['num_samples']:,} images). mCE relative to {labels[ref]} "
            "(below 1: more robust). " + " ".join(notes))
    out = [("Summary", note, [(headers, table)], [])]

    if len({(r["arch"], r["mode"]) for r in rows}) > 1:
        metrics = [("top1", "top-1"), ("ece", "ECE")]
        metrics += [("mca", "corruption acc.")] if any(r["mca"] is not None for r in rows) else []
        metrics += [("ood_auroc_entropy", "OOD AUROC (entropy)")] if any(r["ood_auroc_entropy"] is not None
                                                                         for r in rows) else []
        out.append(("By architecture and mode", "Runs of the same architecture and mode (e.g. seeds) are "
                    "averaged; error bars show their spread.", [], [("architectures", plots.architecture_figure(rows, metrics))]))

    rel = [(lab, r["reliability"], r["metrics"]["ece"]) for lab, r in zip(labels, results, strict=True)]
    out.append(("Calibration", "Accuracy per confidence bin (15 equal-width bins); the hatched gap is the "
                "distance to perfect calibration (the diagonal).", [], [("reliability", plots.reliability_figure(rel))]))

    robs = [(lab, r["robustness"], r["robustness"]["clean_top1"]) for lab, r in zip(labels, results, strict=True)
            if r.get("robustness")]
    if robs and any(rob["corruptions"] for _, rob, _ in robs):
        names = list(dict.fromkeys(n for _, rob, _ in robs for n in rob["corruptions"]))
        by_corr = [[n, *[fmt_pct(_mean_top1(rob["corruptions"].get(n))) for _, rob, _ in robs]] for n in names]
        levels = max(len(rows_) for _, rob, _ in robs for rows_ in rob["corruptions"].values())
        by_sev = [["0 (clean)", *[fmt_pct(clean) for _, _, clean in robs]]]
        by_sev += [[str(s), *[fmt_pct(_mean_top1([rws[s - 1] for rws in rob["corruptions"].values()]))
                              for _, rob, _ in robs]] for s in range(1, levels + 1)]
        head = ["corruption", *[lab for lab, _, _ in robs]]
        out.append(("Corruptions", "Top-1 under generated corruptions (mean over severities 1–5, then by "
                    "severity averaged over corruptions).",
                    [(head, by_corr), (["severity", *head[1:]], by_sev)],
                    [("severity", plots.severity_figure(robs)),
                     ("corruptions", plots.corruption_figure([(lab, rob) for lab, rob, _ in robs]))]))
    if robs and any(rob["shifts"] for _, rob, _ in robs):
        tables = []
        for name in ("rotation", "translation"):
            sweeps = [rob["shifts"].get(name) for _, rob, _ in robs]
            if any(sweeps):
                n = max(len(s or []) for s in sweeps)
                params = next(s for s in sweeps if s)
                body = [[params[i]["param"], *[fmt_pct(s[i]["top1"]) if s and i < len(s) else "–" for s in sweeps]]
                        for i in range(n)]
                tables.append(([name, *[lab for lab, _, _ in robs]], body))
        out.append(("Shifts", "Top-1 along Ovadia et al.'s shift sweeps.", tables,
                    [("shifts", plots.shift_figure(robs))]))

    if any(r.get("ood") for r in results):
        keys = [("auroc_max_prob", "AUROC (max p)"), ("auroc_entropy", "AUROC (entropy)"),
                ("entropy_in", "entropy in-dist."), ("entropy_out", "entropy OOD"), ("max_prob_out", "max p OOD")]
        body = [[lab, r["ood"]["data"], *[fmt_num(r["ood"][k]) for k, _ in keys]]
                for lab, r in zip(labels, results, strict=True) if r.get("ood")]
        out.append(("Out-of-distribution detection", "AUROC of telling OOD inputs from test inputs by low max "
                    "probability or high entropy (0.5: chance). Entropy in nats.",
                    [(["run", "OOD data", *[h for _, h in keys]], body)], []))

    classes = results[0].get("classes") or list(results[0]["per_class_accuracy"])
    pcs = [r["per_class_accuracy"] for r in results]
    body = [[c, *[fmt_pct(pc.get(c)) for pc in pcs]] for c in classes]
    out.append(("Per-class accuracy", "", [(["class", *labels], body)], []))
    return out


def _mean_top1(rows: list[dict[str, Any]] | None) -> float | None:
    return None if not rows else sum(r["top1"] for r in rows) / len(rows)


def write_report(results: Sequence[dict[str, Any]], out: str | os.PathLike[str], *,
                 reference: int | str | None = None, title: str = "drkit comparison") -> dict[str, Path]:
    """Write ``report.html``, ``report.md``, ``report.json`` and ``plots/*.png`` into ``out``
    from evaluation results (all on the same data). Returns the paths written."""

    results = [json.loads(json.dumps(r)) for r in results]  # private copies: mCE is recomputed below
    if not results:
        raise ConfigError("nothing to compare: pass at least one run")
    datas = {r["data"] for r in results}
    if len(datas) > 1:
        raise ConfigError(f"the runs were evaluated on different data ({', '.join(sorted(datas))}); "
                          "compare them on one dataset (--data)")
    seen: dict[str, int] = {}
    for r in results:  # labels name the runs in tables and legends: keep them unique
        lab = r.get("label") or "model"
        seen[lab] = seen.get(lab, 0) + 1
        r["label"] = lab if seen[lab] == 1 else f"{lab} #{seen[lab]}"
    ref = _pick_reference(results, reference)
    notes = _with_mce(results, ref)
    rows = [summary_row(r) for r in results]

    root = Path(out)
    (root / "plots").mkdir(parents=True, exist_ok=True)
    html_parts, md_parts = [], [f"# {title}\n"]
    for sec_title, note, tables, figures in _sections(results, rows, ref, notes):
        html_parts.append(f"<h2>{sec_title}</h2>" + (f'<p class="note">{note}</p>' if note else ""))
        md_parts.append(f"## {sec_title}\n\n" + (f"{note}\n\n" if note else ""))
        for headers, body in tables:
            html_parts.append(html_table(headers, body))
            md_parts.append(md_table(headers, body) + "\n")
        for name, fig in figures:
            png = figure_png(fig)
            (root / "plots" / f"{name}.png").write_bytes(png)
            html_parts.append(f"<p>{img_tag(png, name)}</p>")
            md_parts.append(f"![{name}](plots/{name}.png)\n\n")
    paths = {"html": root / "report.html", "markdown": root / "report.md", "json": root / "report.json"}
    paths["html"].write_text(html_page(title, html_parts))
    paths["markdown"].write_text("".join(md_parts))
    payload = {"title": title, "reference": results[ref]["label"], "rows": rows, "results": results}
    paths["json"].write_text(json.dumps(to_jsonable(payload), indent=1, allow_nan=False) + "\n")
    log.info("report written to %s", root)
    return paths


def compare(inputs: Sequence[str | os.PathLike[str] | dict[str, Any]], out: str | os.PathLike[str], *,
            data: str | None = None, reference: int | str | None = None, title: str = "drkit comparison",
            **eval_kwargs: Any) -> dict[str, Any]:
    """Evaluate runs (directories), or take saved evaluations (``.json`` files or dicts), and
    write a report (:func:`write_report`). ``eval_kwargs`` go to :func:`drkit.evaluate_run` and
    should be the same for all runs. Returns ``{"paths", "rows"}``."""
    results = []
    for item in inputs:
        if isinstance(item, dict):
            results.append(item)
        elif Path(item).is_file() and Path(item).suffix == ".json":
            results.append(load_evaluation(item))
        else:
            results.append(evaluate_run(item, data, **eval_kwargs))
    paths = write_report(results, out, reference=reference, title=title)
    rows = json.loads(paths["json"].read_text())["rows"]
    return {"paths": paths, "rows": rows}

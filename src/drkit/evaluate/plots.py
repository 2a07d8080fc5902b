"""The figures of drkit's reports, drawn from evaluation results (:func:`drkit.evaluate_run`).

Each function returns a matplotlib ``Figure`` built with the object API (no ``pyplot``, no global
backend switch, nothing shown): :func:`drkit.evaluate.formatting.figure_png` turns it into PNG bytes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

__all__ = ["reliability_figure", "severity_figure", "corruption_figure", "shift_figure", "architecture_figure",
           "per_class_figure"]

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")


def _color(i: int) -> str:
    return _COLORS[i % len(_COLORS)]


def reliability_figure(items: Sequence[tuple[str, dict[str, Any], float | None]]) -> Figure:
    """Reliability diagrams, one panel per ``(label, reliability bins, ECE)``: accuracy per
    confidence bin against the diagonal of perfect calibration, the gap shaded."""
    n = len(items)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(3.2 * cols, 3.3 * rows))
    for i, (label, rel, ece_value) in enumerate(items):
        ax = fig.add_subplot(rows, cols, i + 1)
        edges = np.asarray(rel["edges"])
        width = np.diff(edges)
        acc = np.array([np.nan if v is None else v for v in rel["accuracy"]], dtype=float)
        conf = np.array([np.nan if v is None else v for v in rel["confidence"]], dtype=float)
        has = np.asarray(rel["count"]) > 0
        ax.bar(edges[:-1][has], acc[has], width=width[has], align="edge", color=_color(i), alpha=0.8,
               edgecolor="white", label="accuracy")
        ax.bar(edges[:-1][has], (conf - acc)[has], bottom=acc[has], width=width[has], align="edge",
               color="none", edgecolor="#d62728", hatch="//", linewidth=0.6, label="gap to confidence")
        ax.plot([0, 1], [0, 1], "--", color="#444", linewidth=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence")
        if i % cols == 0:
            ax.set_ylabel("accuracy")
        title = label if ece_value is None else f"{label}\nECE {ece_value:.3f}"
        ax.set_title(title, fontsize=9)
        if i == 0:
            ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def severity_figure(items: Sequence[tuple[str, dict[str, Any], float]]) -> Figure:
    """Mean accuracy over corruptions at each severity (0 = clean), one line per
    ``(label, robustness result, clean top-1)``."""
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    for i, (label, rob, clean) in enumerate(items):
        rows = list(rob["corruptions"].values())
        if not rows:
            continue
        levels = len(rows[0])
        acc = [clean] + [float(np.mean([r[s]["top1"] for r in rows])) for s in range(levels)]
        ax.plot(range(levels + 1), acc, marker="o", color=_color(i), label=label)
    ax.set_xlabel("severity (0 = clean)")
    ax.set_ylabel("top-1, mean over corruptions")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def corruption_figure(items: Sequence[tuple[str, dict[str, Any]]]) -> Figure:
    """Accuracy per corruption (mean over severities), grouped bars, one colour per run."""
    names = list(dict.fromkeys(n for _, rob in items for n in rob["corruptions"]))
    fig = Figure(figsize=(max(6.0, 0.9 * len(names) + 2), 3.8))
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(len(items), 1)
    x = np.arange(len(names))
    for i, (label, rob) in enumerate(items):
        vals = [np.mean([r["top1"] for r in rob["corruptions"][n]]) if n in rob["corruptions"] else np.nan
                for n in names]
        ax.bar(x + (i - (len(items) - 1) / 2) * width, vals, width=width, color=_color(i), label=label)
    ax.set_xticks(x)
    ax.set_xticklabels([n.replace("_", "\n") for n in names], fontsize=8)
    ax.set_ylabel("top-1, mean over severities")
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def shift_figure(items: Sequence[tuple[str, dict[str, Any], float]]) -> Figure:
    """Accuracy along each shift sweep (rotation angle, translation), one line per run."""
    shifts = [n for n in ("rotation", "translation") if any(n in rob["shifts"] for _, rob, _ in items)]
    fig = Figure(figsize=(5.0 * max(len(shifts), 1), 3.6))
    for j, name in enumerate(shifts):
        ax = fig.add_subplot(1, len(shifts), j + 1)
        step = 15 if name == "rotation" else 2
        for i, (label, rob, clean) in enumerate(items):
            rows = rob["shifts"].get(name)
            if rows:
                ax.plot([0] + [step * r["severity"] for r in rows], [clean] + [r["top1"] for r in rows],
                        marker=".", color=_color(i), label=label)
        ax.set_xlabel("rotation (degrees)" if name == "rotation" else "translation (px at 28 px)")
        ax.set_ylabel("top-1")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.set_title(name)
        if j == 0:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def architecture_figure(rows: Sequence[dict[str, Any]], metrics: Sequence[tuple[str, str]]) -> Figure:
    """Bars per architecture, one colour per training mode, one panel per ``(key, title)``
    metric; runs sharing (arch, mode) — e.g. seeds — are averaged, with their spread as error bars."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["arch"], r["mode"])].append(r)
    archs = list(dict.fromkeys(r["arch"] for r in rows))
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    fig = Figure(figsize=(max(3.2 * len(metrics), 5), 3.4))
    width = 0.8 / max(len(modes), 1)
    for j, (key, title) in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), j + 1)
        for i, mode in enumerate(modes):
            means, errs = [], []
            for arch in archs:
                vals = [g[key] for g in groups.get((arch, mode), []) if g.get(key) is not None]
                means.append(float(np.mean(vals)) if vals else np.nan)
                errs.append(float(np.std(vals)) if len(vals) > 1 else 0.0)
            ax.bar(np.arange(len(archs)) + (i - (len(modes) - 1) / 2) * width, means, width=width, yerr=errs,
                   color=_color(i), label=mode, capsize=3)
        ax.set_xticks(np.arange(len(archs)))
        ax.set_xticklabels(archs, fontsize=8, rotation=20)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    handles, names = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(modes), fontsize=8, bbox_to_anchor=(0.5, 1.0))
    return fig


def per_class_figure(classes: Sequence[str], values: Sequence[float | None], *, title: str) -> Figure:
    """One bar per class (e.g. the teacher's agreement with the labels)."""
    fig = Figure(figsize=(max(5.0, 0.45 * len(classes) + 1.5), 3.2))
    ax = fig.add_subplot(1, 1, 1)
    vals = np.array([np.nan if v is None else v for v in values], dtype=float)
    ax.bar(np.arange(len(classes)), vals, color=_color(0))
    ax.set_xticks(np.arange(len(classes)))
    ax.set_xticklabels([str(c) for c in classes], fontsize=8, rotation=45 if len(classes) > 10 else 0, ha="right"
                       if len(classes) > 10 else "center")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig

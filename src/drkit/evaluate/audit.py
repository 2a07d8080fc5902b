"""``drkit audit STORE --data DATA``: check the teacher against the original labels.

The paper warns that a biased, over-confident teacher passes its faults on to every student
trained on its store. The audit puts the teacher's view of each training sample next to the
sample's label:

- ``source="store"`` (default; needs no teacher, the store is data): the mean over a sample's
  stored augmentations of the densified soft labels — exactly what students are taught. With a
  mixing policy each record mixes in a partner image, so records are weighted by the sample's own
  share ``λ`` and the partners' classes leave a diffuse background;
- ``source="teacher"``: the store's teacher ensemble (from the specs in its manifest) rerun on the
  un-augmented images.

It reports the agreement with the labels overall and per class, the most frequent confusions,
the teacher's calibration against the labels (ECE, reliability, over-confidence = mean confidence
minus accuracy) and, for a human to look at, the most confident disagreements: mislabelled samples
or the teacher's blind spots. ``write_audit_report`` renders them as an HTML image gallery.
"""

from __future__ import annotations

import html
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..augment.ops import LAMBDA_SCALE
from ..data import ImageDataset, load_dataset
from ..errors import ConfigError
from ..inference import best_device
from ..metrics import evaluation_metrics, per_class_accuracy, reliability
from ..reinforcement.store import Store
from ..reinforcement.targets import densify
from . import plots
from .evaluation import predict, teacher_module, to_jsonable
from .formatting import (
    figure_png,
    fmt_num,
    fmt_pct,
    html_page,
    html_table,
    image_png,
    img_tag,
    md_table,
)

__all__ = ["audit_store", "stored_teacher_probs", "write_audit_report"]

log = logging.getLogger(__name__)

SOURCES = ("store", "teacher")


def stored_teacher_probs(store: Store) -> np.ndarray:
    """``(N, C)`` per sample: the mean of its stored soft labels over the augmentations, each
    weighted by the sample's own mixing share (1 without mixing)."""
    out = np.zeros((store.num_samples, store.num_classes), dtype=np.float64)
    mixing = "mix_lam" in store.record_dtype.names
    for i in range(store.num_samples):
        recs = store.records(i)
        ids = None if store.dense else np.asarray(recs["classes"], dtype=np.int64)
        dense = densify(np.asarray(recs["probs"], dtype=np.float32), ids, store.num_classes).double().numpy()
        w = np.asarray(recs["mix_lam"], dtype=np.float64) / LAMBDA_SCALE if mixing else np.ones(len(recs))
        out[i] = (w[:, None] * dense).sum(0) / max(w.sum(), 1e-12)
    return out


def _clean_teacher_probs(store: Store, dataset: ImageDataset, teacher: Sequence[str] | None,
                         trust_store_teachers: bool) -> np.ndarray:
    teacher, _ = teacher_module(store.root, teacher, dataset, trust_store_teachers=trust_store_teachers)
    dev = best_device()
    return predict(teacher.to(dev), dataset, dev)


def audit_store(store: str | os.PathLike[str] | Store, data: str | ImageDataset, *, source: str = "store",
                top: int = 32, teacher: Sequence[str] | None = None,
                trust_store_teachers: bool = False) -> dict[str, Any]:
    """Audit the teacher of ``store`` against the labels of ``data`` (the dataset it was made from).

    Args:
        store: a store directory or an open :class:`~drkit.Store`.
        data: the source dataset; checked against the store's fingerprint.
        source: ``"store"`` (stored soft labels) or ``"teacher"`` (rerun on clean images).
        top: how many of the most confident disagreements to list.
        teacher: for ``source="teacher"``, the teachers to rerun (the store's are used only with
            ``trust_store_teachers``: a store is data, not code).

    Returns:
        A JSON-able dict: ``metrics`` (the teacher's top-1 = agreement with the labels, NLL, ECE,
        ...), ``per_class_agreement``, ``confusions``, ``reliability``, ``overconfidence`` and
        ``disagreements`` (index, label, teacher's class, confidence, the label's probability).

    Raises:
        StoreMismatchError: ``data`` is not the dataset the store was made from.
    """
    if source not in SOURCES:
        raise ConfigError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    dataset = load_dataset(data)
    st = store if isinstance(store, Store) else Store.open(store)
    st.check_dataset(dataset)
    probs = (stored_teacher_probs(st) if source == "store"
             else _clean_teacher_probs(st, dataset, teacher, trust_store_teachers))
    labels = dataset.labels
    pred, conf = probs.argmax(1), probs.max(1)
    metrics = evaluation_metrics(probs, labels)
    wrong = np.flatnonzero(pred != labels)
    worst = wrong[np.argsort(-conf[wrong], kind="stable")][:top]
    pairs, counts = np.unique(np.stack([labels[wrong], pred[wrong]], 1), axis=0, return_counts=True) \
        if len(wrong) else (np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64))
    order = np.argsort(-counts, kind="stable")[:10]
    names = dataset.classes
    return to_jsonable({
        "store": str(st.root), "data": dataset.name, "source": source, "num_samples": len(dataset),
        "num_augs": st.num_augs, "policy": st.policy_config.name,
        "teacher": [m.get("spec") or m.get("class") for m in st.settings["teacher"]["members"]],
        "classes": list(names), "metrics": metrics, "agreement": metrics["top1"],
        "mean_confidence": float(conf.mean()), "overconfidence": float(conf.mean() - metrics["top1"]),
        "per_class_agreement": dict(zip(names, per_class_accuracy(probs, labels).tolist(), strict=True)),
        "confusions": [{"label": names[a], "teacher": names[b], "count": int(c)}
                       for (a, b), c in zip(pairs[order], counts[order], strict=True)],
        "reliability": reliability(probs, labels),
        "disagreements": [{"index": int(i), "label": names[labels[i]], "teacher": names[pred[i]],
                           "confidence": float(conf[i]), "label_prob": float(probs[i, labels[i]])} for i in worst],
    })


def write_audit_report(result: dict[str, Any], data: str | ImageDataset, out: str | os.PathLike[str]) -> dict[str, Path]:
    """``audit.html`` (self-contained, with the gallery of disagreements), ``audit.md`` (images in
    ``gallery/`` and ``plots/``) and ``audit.json`` in ``out``."""

    dataset = load_dataset(data)
    root = Path(out)
    (root / "gallery").mkdir(parents=True, exist_ok=True)
    (root / "plots").mkdir(parents=True, exist_ok=True)
    m = result["metrics"]
    src = "stored soft labels (mean over augmentations)" if result["source"] == "store" else "teacher on clean images"
    summary = [["agreement with labels (teacher top-1)", fmt_pct(result["agreement"])],
               ["teacher top-5", fmt_pct(m["top5"])], ["mean confidence", fmt_pct(result["mean_confidence"])],
               ["over-confidence (confidence − accuracy)", fmt_num(result["overconfidence"])],
               ["ECE", fmt_num(m["ece"])], ["adaptive ECE", fmt_num(m["adaptive_ece"])],
               ["NLL", fmt_num(m["nll"])], ["Brier", fmt_num(m["brier"])]]
    intro = (f"Store {result['store']} ({result['policy']}, {result['num_augs']} augmentations, teacher "
             f"{', '.join(map(str, result['teacher']))}) against the labels of {result['data']} "
             f"({result['num_samples']:,} samples); teacher view: {src}.")
    classes = result["classes"]
    per_class = [[c, fmt_pct(result["per_class_agreement"][c])] for c in classes]
    confusions = [[c["label"], c["teacher"], c["count"]] for c in result["confusions"]]
    figs = {"reliability": plots.reliability_figure([("teacher vs labels", result["reliability"], m["ece"])]),
            "per_class": plots.per_class_figure(classes, [result["per_class_agreement"][c] for c in classes],
                                                title="teacher agreement with the labels, per class")}
    pngs = {k: figure_png(f) for k, f in figs.items()}
    for k, png in pngs.items():
        (root / "plots" / f"{k}.png").write_bytes(png)

    cards, md_rows = [], []
    for d in result["disagreements"]:
        png = image_png(dataset.image(d["index"]))
        (root / "gallery" / f"{d['index']}.png").write_bytes(png)
        caption = (f"#{d['index']}: label <b>{html.escape(d['label'])}</b>, teacher "
                   f"<b>{html.escape(d['teacher'])}</b> ({d['confidence']:.0%}); p(label) {d['label_prob']:.1%}")
        alt = f"sample {d['index']}"
        cards.append(f"<figure>{img_tag(png, alt)}<figcaption>{caption}</figcaption></figure>")
        md_rows.append([f"![{d['index']}](gallery/{d['index']}.png)", d["index"], d["label"], d["teacher"],
                        fmt_pct(d["confidence"]), fmt_pct(d["label_prob"])])
    gallery_note = ("The most confident disagreements between the teacher and the labels, most confident first: "
                    "check each by eye — a wrong label, an ambiguous image, or a teacher fault students will learn.")
    html_parts = [f'<p class="note">{html.escape(intro)}</p>',
                  html_table(["", "value"], summary), "<h2>Calibration against the labels</h2>",
                  f"<p>{img_tag(pngs['reliability'], 'reliability')}</p>", "<h2>Per-class agreement</h2>",
                  f"<p>{img_tag(pngs['per_class'], 'per-class agreement')}</p>", html_table(["class", "agreement"], per_class),
                  "<h2>Most frequent confusions</h2>", html_table(["label", "teacher says", "samples"], confusions),
                  f"<h2>Most confident disagreements ({len(cards)})</h2>", f'<p class="note">{gallery_note}</p>',
                  '<div class="gallery">' + "".join(cards) + "</div>"]
    md = (f"# drkit audit\n\n{intro}\n\n" + md_table(["", "value"], summary)
          + "\n## Calibration against the labels\n\n![reliability](plots/reliability.png)\n\n"
          + "## Per-class agreement\n\n![per-class](plots/per_class.png)\n\n" + md_table(["class", "agreement"], per_class)
          + "\n## Most frequent confusions\n\n" + md_table(["label", "teacher says", "samples"], confusions)
          + f"\n## Most confident disagreements ({len(cards)})\n\n{gallery_note}\n\n"
          + md_table(["image", "index", "label", "teacher", "confidence", "p(label)"], md_rows))
    paths = {"html": root / "audit.html", "markdown": root / "audit.md", "json": root / "audit.json"}
    paths["html"].write_text(html_page("drkit audit: teacher vs labels", html_parts))
    paths["markdown"].write_text(md)
    paths["json"].write_text(json.dumps(result, indent=1, allow_nan=False) + "\n")
    return paths

"""Does the teacher recognise the generated images it labels? For each teacher-label store of a
benchmarks/synth/synth_harness.py run: the share of stored views whose teacher top class is the image's prompt
(first) class, and the teacher's mean probability of that class.

    python -m benchmarks.synth.teacher_agreement runs/synth-pretrained6k-probe-one-resnet-teacher

Reads ``RUN/stores/AGENT-sSEED`` (made by ``drkit reinforce imagefolder:RUN/support/AGENT-sSEED``) and
the support set's labels; prints one line per agent, pooled over seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import drkit


def agreement(store: drkit.Store, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per stored view: whether the teacher's top class is the label, and its probability of the label."""
    hits, mass = [], []
    for i, label in enumerate(labels):
        probs = np.asarray(store.records(i)["probs"], dtype=np.float32)  # (augs, classes), dense store
        hits.append(probs.argmax(1) == label)
        mass.append(probs[:, label])
    return np.concatenate(hits), np.concatenate(mass)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", type=Path, nargs="+", help="finished benchmarks/synth/synth_harness.py folders")
    args = ap.parse_args()
    for run in args.runs:
        by_agent: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for root in sorted((run / "stores").glob("*-s*")):
            agent = root.name.rsplit("-s", 1)[0]
            support = drkit.load_dataset(f"imagefolder:{run / 'support' / root.name}")
            store = drkit.Store.open(root, dataset=support)
            if not store.dense:
                raise SystemExit(f"{root} keeps top-{store.topk} of {store.num_classes} classes; need a dense store")
            by_agent.setdefault(agent, []).append(agreement(store, support.labels))
        if not by_agent:
            raise SystemExit(f"{run / 'stores'} holds no teacher-label stores: run the harness with teacher arms first")
        for agent, parts in by_agent.items():
            hits = np.concatenate([h for h, _ in parts])
            mass = np.concatenate([m for _, m in parts])
            print(f"{run.name}  {agent:7s} {len(hits):6d} views  teacher top class = prompt class {hits.mean():.1%}  "
                  f"mean probability of the prompt class {mass.mean():.3f}")


if __name__ == "__main__":
    main()

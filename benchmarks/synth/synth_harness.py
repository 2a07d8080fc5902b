"""Compact synthetic support sets on Fashion-MNIST in a limited-data regime, one command.

Schiavone & Li (arXiv 2404.16300) with drkit's offline generator:

1. real data: a stratified pool of Fashion-MNIST training images, split into train and a held-out
   validation split (the reward's only data); the test split is touched by the final evaluation only;
2. the local class-conditional diffusion generator trained on the train split (cached as
   safetensors), and its Classification Accuracy Score: a classifier trained only on generated
   images, tested on the real test set;
3. a teacher (a drkit run on the same train split) for the "teacher soft labels" variant;
4. per seed, each agent (random, bandit, PPO) builds a support set under the same budget;
5. per seed, a fresh classifier trained on real (+ support set) data: none, none with as many
   optimisation steps as the arms with 400 more images, random, bandit, PPO (synthetic images
   labelled by their prompt's first class), PPO's support set with its prompt mixtures as soft
   labels, and PPO's support set reinforced by the teacher (``drkit reinforce``) so that its images
   carry the teacher's soft labels; test top-1 / NLL / ECE.

Every arm is cached under ``--out`` (``arms/*.json``, the generator, support sets, stores): a rerun
skips finished work. ``--quick`` is the profile reported in docs/results/synth.md; ``full`` is the
default, ``smoke`` the test suite's. An experiment is a profile plus ``--set KEY=VALUE`` overrides of
its fields (a nested one as ``generator.train_steps=3000``) in an ``--out`` of its own; each results
document (docs/results/synth_*.md) shows its command.

    python -m benchmarks.synth.synth_harness --quick --report docs/results/synth.md
    python -m benchmarks.synth.synth_harness --quick --set reward_signal=probe --out runs/synth-probe
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

import drkit
from benchmarks._common import (
    add_harness_args,
    cached_arm,
    harness_command,
    harness_profile,
    write_report,
)
from benchmarks.synth.synth_report import render
from drkit.data import ArrayDataset, stratified_subset
from drkit.inference import predict_probs
from drkit.metrics import classification_metrics
from drkit.synth import (
    LocalDiffusionConfig,
    LocalGenerator,
    Prompt,
    SynthConfig,
    fit_local_generator,
    run_synth,
    split_validation,
    support_training_set,
)
from drkit.training.loop import TrainConfig, train
from drkit.training.runs import train_run

log = logging.getLogger("synth-bench")

AGENTS = ("random", "bandit", "ppo")


@dataclass(frozen=True)
class Profile:
    pool: int  # real labelled images (train + validation)
    val_fraction: float
    generator: LocalDiffusionConfig
    cas_images: int  # generated images the CAS classifier trains on
    cas_epochs: int
    arch: str  # the rewarded and the evaluated classifier
    pretrain_epochs: int
    epochs_per_step: int
    budget: int
    images_per_step: int
    entropy_weight: float
    final_epochs: int
    seeds: tuple[int, ...]
    teacher_arch: str
    teacher_epochs: int
    num_augs: int
    batch_size: int = 64
    # 0: the generator fits the train split (the offline method on the user's own data). N: it fits N other
    # real training images, disjoint from the pool -- a stand-in for a generator that knows more than the
    # classifier's data, as Stable Diffusion does in the paper (cas.py's generator with the same N and steps:
    # copy its --out's generator/ into this --out to reuse it).
    generator_images: int = 0
    reward_signal: str = "step"  # SynthConfig.reward_signal: "probe" reads the reward off two short probes
    class_slots: int = 3  # SynthConfig.class_slots: 1 = the agent names one class ("A photo of a c, c, and c")
    teacher_agents: tuple[str, ...] = ("ppo",)  # whose support sets also get the teacher's soft labels ("AGENT+teacher")


PROFILES = {
    "quick": Profile(pool=1500, val_fraction=1 / 3,
                     generator=LocalDiffusionConfig(train_steps=1500, sample_steps=10, save_every=250),
                     cas_images=2000, cas_epochs=15, arch="smallcnn-16", pretrain_epochs=15, epochs_per_step=1,
                     budget=400, images_per_step=10, entropy_weight=0.1, final_epochs=30, seeds=(0, 1, 2),
                     teacher_arch="smallcnn-32", teacher_epochs=20, num_augs=8),
    "full": Profile(pool=2000, val_fraction=0.25,
                    generator=LocalDiffusionConfig(train_steps=6000, sample_steps=20, save_every=500),
                    cas_images=10000, cas_epochs=15, arch="smallcnn", pretrain_epochs=20, epochs_per_step=2,
                    budget=400, images_per_step=10, entropy_weight=0.1, final_epochs=40, seeds=(0, 1, 2, 3, 4),
                    teacher_arch="smallcnn-48", teacher_epochs=30, num_augs=16),
}
# seconds per arm: what a reviewer runs to check the harness end to end
PROFILES["smoke"] = replace(PROFILES["quick"], pool=300,
                            generator=LocalDiffusionConfig(width=8, train_steps=20, sample_steps=2, save_every=10),
                            cas_images=100, cas_epochs=1, arch="smallcnn-4", pretrain_epochs=1, budget=20,
                            images_per_step=5, final_epochs=1, seeds=(0, 1), teacher_arch="smallcnn-4",
                            teacher_epochs=1, num_augs=2, teacher_agents=AGENTS)

def generator_indices(labels: np.ndarray, images: int) -> np.ndarray:
    """Which ``images`` real training images an outside generator fits (stratified, seed 0; cas.py's too)."""
    return stratified_subset(labels, images / len(labels), seed=0)


def load_data(p: Profile) -> tuple[ArrayDataset, ArrayDataset, ArrayDataset, ArrayDataset]:
    """``(train, val, test, generator's data)``: the pool (train + val) is drawn from the training images
    the generator does not fit; without ``generator_images`` the generator fits the train split."""
    full: ArrayDataset = drkit.load_dataset("fashion-mnist")  # type: ignore[assignment]
    n = p.generator_images
    gen_idx = generator_indices(full.labels, n) if n else np.array([], dtype=np.int64)
    rest = np.setdiff1d(np.arange(len(full)), gen_idx)
    pick = rest[stratified_subset(full.labels[rest], p.pool / len(rest), seed=0)]
    pool = full.subset(pick, name=f"fashion-mnist[{p.pool}]" + (" outside the generator's" if n else ""))
    train, val = split_validation(pool, p.val_fraction, seed=0)
    gen_data = full.subset(gen_idx, name=f"fashion-mnist[{len(gen_idx)}]") if n else train
    return train, val, drkit.load_dataset("fashion-mnist:test"), gen_data  # type: ignore[return-value]


class Bench:
    def __init__(self, out: Path, profile: Profile, device: str | None, progress: bool) -> None:
        self.out, self.p, self.device, self.progress = out, profile, device, progress
        (out / "arms").mkdir(parents=True, exist_ok=True)

    def cached(self, name: str, make) -> dict[str, Any]:
        return cached_arm(self.out, name, make)

    def data(self) -> tuple[ArrayDataset, ArrayDataset, ArrayDataset, ArrayDataset]:
        return load_data(self.p)

    def evaluate(self, model: torch.nn.Module, test: ArrayDataset) -> dict[str, float]:
        return classification_metrics(predict_probs(model, test), test.labels)

    def fit(self, data, test: ArrayDataset, epochs: int, seed: int) -> dict[str, Any]:
        """A fresh classifier of the profile's architecture trained on ``data``, tested on ``test``."""
        c, h, w = test.image_shape
        torch.manual_seed(seed)
        model = drkit.create_model(self.p.arch, num_classes=test.num_classes, in_chans=c, image_size=(h, w))
        cfg = TrainConfig(epochs=epochs, batch_size=self.p.batch_size, seed=seed, device=self.device)
        t0 = time.perf_counter()
        train(model, data, cfg, progress=False)
        return {**self.evaluate(model, test), "train_seconds": time.perf_counter() - t0, "train_items": len(data)}

    def cas(self, gen: LocalGenerator, train: ArrayDataset, test: ArrayDataset) -> dict[str, Any]:
        """Classification Accuracy Score: trained on generated images only ("A photo of a c, c, and c")."""
        def make() -> dict[str, Any]:
            per = self.p.cas_images // train.num_classes
            prompts = [Prompt(0, (c, c, c)) for c in range(train.num_classes) for _ in range(per)]
            t0 = time.perf_counter()
            images = gen.generate(prompts, seed=12345)
            gen_seconds = time.perf_counter() - t0
            synth = ArrayDataset(images.numpy(), np.array([p.label for p in prompts]), classes=train.classes,
                                 name="generated")
            _save_grid(gen, self.out / "samples.png")
            return {"images": len(synth), "generate_seconds": gen_seconds, "images_per_second": len(synth) / gen_seconds,
                    "cas": self.fit(support_training_set(synth), test, self.p.cas_epochs, seed=0),
                    "real": self.fit(support_training_set(train), test, self.p.cas_epochs, seed=0)}
        return self.cached("cas", make)

    def run(self) -> dict[str, Any]:
        p = self.p
        train, val, test, gen_data = self.data()
        res: dict[str, Any] = {"profile": _jsonable(asdict(p)), "data": {"train": len(train), "val": len(val),
                                                                           "test": len(test)}}
        t0 = time.perf_counter()
        gen = fit_local_generator(gen_data, self.out / "generator", replace(p.generator, device=self.device),
                                  progress=self.progress)
        res["generator"] = {**json.loads((self.out / "generator" / "generator.json").read_text()),
                            "load_or_fit_seconds": time.perf_counter() - t0}
        res["cas"] = self.cas(gen, train, test)
        teacher = self.cached("teacher", lambda: train_run(
            train, self.out / "teacher", arch=p.teacher_arch, mode="erm", policy="cropflip", eval_data=val,
            config=TrainConfig(epochs=p.teacher_epochs, batch_size=p.batch_size, seed=0, device=self.device),
            progress=self.progress))
        res["teacher"] = {"arch": p.teacher_arch, "val_top1": teacher["final"]["top1"]}

        res["agents"], res["final"] = [], []
        for seed in p.seeds:
            for agent in AGENTS:
                res["agents"].append(self.agent(agent, seed, train, val, gen))
            res["final"] += self.finals(seed, train, test)
        return res

    def agent(self, agent: str, seed: int, train, val, gen) -> dict[str, Any]:
        p = self.p
        cfg = SynthConfig(budget=p.budget, images_per_step=p.images_per_step, epochs_per_step=p.epochs_per_step,
                          pretrain_epochs=p.pretrain_epochs, entropy_weight=p.entropy_weight,
                          reward_signal=p.reward_signal, class_slots=p.class_slots, arch=p.arch,
                          batch_size=p.batch_size, seed=seed, device=self.device)
        s = self.cached(f"agent-{agent}-s{seed}", lambda: run_synth(
            train, gen, self.out / "support" / f"{agent}-s{seed}", agent=agent, val=val, config=cfg,
            progress=self.progress))
        return {"agent": agent, "seed": seed, **{k: s[k] for k in ("agent_stats", "favoured_prompts", "seconds",
                                                                  "initial_validation", "final_validation")},
                "history": s["history"]}

    def finals(self, seed: int, train, test) -> list[dict[str, Any]]:
        p, rows = self.p, []
        equal = round(p.final_epochs * (1 + p.budget / len(train)))
        arms = {"none": (None, "first", p.final_epochs), "none-equal-steps": (None, "first", equal),
                **{a: (a, "first", p.final_epochs) for a in AGENTS}, "ppo+prompt-mix": ("ppo", "prompt", p.final_epochs),
                **{f"{a}+teacher": (a, "teacher", p.final_epochs) for a in p.teacher_agents}}
        if p.class_slots == 1:  # a prompt naming one class: its mix is its first class, the arm would repeat "ppo"
            del arms["ppo+prompt-mix"]
        for arm, (agent, label, epochs) in arms.items():
            def make(agent=agent, label=label, epochs=epochs) -> dict[str, Any]:
                support = self.out / "support" / f"{agent}-s{seed}" if agent else None
                store = None
                if label == "teacher":
                    store = drkit.reinforce(f"imagefolder:{support}", f"run:{self.out / 'teacher'}",
                                            self.out / "stores" / f"{agent}-s{seed}", policy="cropflip",
                                            num_augs=p.num_augs, num_workers=0, device=self.device,
                                            progress=False).root
                data = support_training_set(train, support, label=label, store=store, seed=seed)
                return self.fit(data, test, epochs, seed)
            # the epochs are in the name: a profile with other epochs does not reuse these arms
            rows.append({"arm": arm, "seed": seed, "epochs": epochs,
                         **self.cached(f"final-{arm}-e{epochs}-s{seed}", make)})
        return rows


def _save_grid(gen: LocalGenerator, path: Path) -> None:
    """Samples: a row per domain of pure-class prompts, then a row of three-class mixes."""
    from torchvision.utils import save_image

    c = len(gen.class_names)
    prompts = [Prompt(d, (k, k, k)) for d in range(len(gen.domains)) for k in range(c)]
    prompts += [Prompt(0, (k, (k + 1) % c, (k + 2) % c)) for k in range(c)]
    images = gen.generate(prompts, seed=7).float() / 255
    save_image(images, str(path), nrow=c, padding=1)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(d, default=lambda o: asdict(o) if hasattr(o, "__dataclass_fields__") else str(o)))


def main() -> None:
    ap = argparse.ArgumentParser(description="Compact synthetic support sets on Fashion-MNIST (limited data)")
    add_harness_args(ap, PROFILES, quick="the scaled-down profile of docs/results/synth.md",
                     out="runs/synth[-PROFILE]; --set needs one of its own",
                     example="--set reward_signal=probe --set generator.train_steps=3000 --set teacher_agents=random,ppo")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1: small convolutions on a shared 2-core machine run fastest so)")
    args = ap.parse_args()
    if args.set and not args.out:  # cached arms are keyed by name, not by every setting
        ap.error("--set needs an --out of its own: the profile's folder holds arms of other settings")
    name, profile = harness_profile(args, PROFILES)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    out = args.out or Path("runs") / ("synth" if name == "full" else f"synth-{name}")
    t0 = time.perf_counter()
    results = Bench(out, profile, args.device, progress=not args.quiet).run()
    results["wall_seconds_this_call"] = time.perf_counter() - t0
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    command = harness_command("benchmarks.synth.synth_harness", name, args.set, args.out)
    md = render(results, command=command, samples=out / "samples.png")
    (out / "report.md").write_text(md)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(out / "samples.png", args.report.with_name(f"{args.report.stem}_samples.png"))
        write_report(args.report, render(results, command=command,
                                         samples=Path(f"{args.report.stem}_samples.png")))
    print(md)


if __name__ == "__main__":
    main()

"""Fashion-MNIST+: dataset reinforcement across architectures, reproducible with one command.

Our version of the paper's main table (Faghri et al., ICCV 2023, Tab. 4) on a real dataset:

1. a teacher ensemble (3 members) trained on Fashion-MNIST; each member's and the ensemble's
   accuracy and calibration;
2. the training set reinforced with the recommended policy (randaugment) -> Fashion-MNIST+;
3. students of four families (small CNN, ResNet, MobileNet, ViT) trained with ERM, DR and online
   KD at equal epochs and policy, over seeds, evaluated (top-1, NLL, ECE, corruption accuracy);
4. a limited-data arm (10 % of the training set): ERM vs DR;
5. a transfer arm: students pretrained on Fashion-MNIST vs Fashion-MNIST+, fine-tuned on digits vs
   digits+ (digits upsampled to 28×28, reinforced by their own teacher ensemble).

Every arm is cached under ``--out`` (runs and ``arms/*.json``): rerunning skips finished arms, so
the full run can be spread over several sessions. Three profiles:
``--quick`` (< 20 min on 2 CPU cores: every arm, the smallest member of each family; a check, not a
result), ``--profile standard`` (what docs/results/fmnist_plus.md reports: 5,000 images, about 2.5 h
for its two seeds on 2 CPU cores) and the full one (all 60,000 images: meant for a GPU, where it runs
unchanged); ``smoke`` is the test suite's. An experiment is a profile plus ``--set KEY=VALUE``
overrides of its fields, in an ``--out`` of its own: each results document shows its command.

    python -m benchmarks.fmnist_plus.fmnist_harness --quick      # results in runs/fmnist_plus-quick
    python -m benchmarks.fmnist_plus.fmnist_harness --profile standard --report docs/results/fmnist_plus.md
    python -m benchmarks.fmnist_plus.fmnist_harness --profile standard --set batch_size=128 --out runs/b128
    python -m benchmarks.fmnist_plus.fmnist_harness              # full profile
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.transforms.v2 import functional as F

import drkit
from benchmarks._common import (
    add_harness_args,
    cached_arm,
    harness_command,
    harness_profile,
    write_report,
)
from benchmarks.fmnist_plus.calibration import cross_fitted_calibration
from benchmarks.fmnist_plus.fmnist_report import render
from drkit.data import ArrayDataset, stratified_subset
from drkit.evaluate.evaluation import evaluate_model, evaluate_run, to_jsonable
from drkit.inference import predict_probs
from drkit.metrics import classification_metrics
from drkit.reinforcement.store import record_dtype
from drkit.teach import TEACH_TRAIN_DEFAULTS, TeachConfig, teach
from drkit.training.loop import TrainConfig
from drkit.training.runs import train_run

log = logging.getLogger("fmnist_plus")


@dataclass(frozen=True)
class Profile:
    train_samples: int | None  # None: all 60,000
    test_samples: int | None  # None: all 10,000
    teachers: tuple[str, ...]
    teacher_epochs: int
    num_augs: int
    topk: int
    students: tuple[str, ...]
    student_epochs: int
    seeds: tuple[int, ...]
    limited_fraction: float
    limited_epochs: int
    transfer_arch: str
    transfer_epochs: int
    digits_teacher_epochs: int
    robustness_samples: int = 1000  # test images under each corruption/shift and severity
    # The limited-data DR student's store: None reuses the main store's ``num_augs`` views of its
    # images (repeats when ``limited_epochs`` is larger); N reinforces the subset with N views.
    limited_num_augs: int | None = None
    policy: str = "randaugment"
    teacher_policy: str | None = None  # policy the teachers train with (None: ``policy``)
    batch_size: int = 128
    # Softmax temperature of the teacher ensemble when reinforcing (< 1 sharpens the stored labels: a
    # fix to try when soft-label students come out underconfident).
    temperature: float = 1.0
    # The limited-data store's temperature (None: ``temperature``): with few images the teacher's full
    # distribution carries the extra information that sharpening removes.
    limited_temperature: float | None = None
    # The full profile's arms (issue "Fashion-MNIST+ at full scale"); the defaults keep the other
    # profiles, and their cached runs, as they were.
    teach: bool = False  # teachers by `drkit teach` (diverse `teachers`, temperature fitted on their held-out split)
    teacher_augmix: bool = False  # drkit teach --augmix: AugMix on every member's views (robust teachers)
    kd_students: tuple[str, ...] | None = None  # students with an online-KD arm (None: every student)
    # The paper's second guideline for this (the smallest) student: DR from a cropflip store of the same
    # teachers, and DR with ml-dr's p (the original image with its hard label with probability 1 - p).
    guideline_arch: str | None = None
    reinforced_prob: float = 0.8
    calibration: bool = False  # every student's ECE/NLL after temperature scaling, cross-fitted on test halves
    transfer: bool = True  # the digits transfer arm


PROFILES = {
    # What docs/results/fmnist_plus.md reports. Teachers train with cropflip, longer than the students:
    # with the students' randaugment for 8 epochs they reached 75 % and could not teach
    # (docs/results/fmnist_plus_teacher_randaugment.md). Batch 32: at 128 the students got 400 steps and
    # DR gained little (docs/results/fmnist_plus_batch128.md). Temperature 0.5: at 1 the DR students came
    # out under-confident; the limited-data store keeps 1 (at 0.5 it lost 2.75 points).
    "standard": Profile(train_samples=5000, test_samples=2000, teachers=("smallcnn-48",) * 3, teacher_epochs=30,
                        num_augs=10, topk=10, students=("smallcnn-16", "resnet18", "mobilenetv3_small_100", "vit-mini-4"),
                        student_epochs=10, seeds=(0, 1), limited_fraction=0.1, limited_epochs=50,
                        transfer_arch="smallcnn-16", transfer_epochs=30, digits_teacher_epochs=30,
                        robustness_samples=500, teacher_policy="cropflip", limited_num_augs=50, batch_size=32,
                        temperature=0.5, limited_temperature=1.0),
    # Every arm of the method at a size that finishes in < 20 min on 2 CPU cores: the smallest member
    # of each family, fewer images and epochs. A check that the pipeline holds, not a result.
    "quick": Profile(train_samples=2000, test_samples=1000, teachers=("smallcnn-32",) * 3, teacher_epochs=10,
                     num_augs=6, topk=10, students=("smallcnn-16", "test_resnet", "mobilenetv3_small_050", "vit-mini-2"),
                     student_epochs=6, seeds=(0, 1), limited_fraction=0.2, limited_epochs=20,
                     transfer_arch="smallcnn-16", transfer_epochs=6, digits_teacher_epochs=10,
                     robustness_samples=200, teacher_policy="cropflip", limited_num_augs=20),
    # All of Fashion-MNIST, the paper's way (docs/results/fmnist_plus_full.md): a diverse `drkit teach`
    # ensemble with AugMix, students trained long enough for credible ERM baselines (ResNet-18 >= 93.5 %),
    # KD for the largest and smallest student, the smallest student's guideline arms, calibration after
    # temperature scaling. About 85 CPU-hours on 2 cores (estimate in the report): meant for a GPU.
    "full": Profile(train_samples=None, test_samples=None, teachers=("resnet18", "resnet34", "mobilenetv3_large_100"),
                    teacher_epochs=30, num_augs=30, topk=10,
                    students=("smallcnn-16", "resnet18", "mobilenetv3_small_100", "vit-mini-4"),
                    student_epochs=30, seeds=(0, 1), limited_fraction=0.1, limited_epochs=60,
                    transfer_arch="smallcnn-16", transfer_epochs=30, digits_teacher_epochs=30,
                    robustness_samples=2000, teacher_policy="randaugment+mixing", limited_num_augs=60,
                    teach=True, teacher_augmix=True, kd_students=("smallcnn-16", "resnet18"),
                    guideline_arch="smallcnn-16", calibration=True, transfer=False),
}
# A few seconds per arm: what the test suite runs to keep the harness working.
PROFILES["smoke"] = replace(PROFILES["quick"], train_samples=300, test_samples=100, teachers=("smallcnn-4",) * 3,
                            teacher_epochs=1, num_augs=2, students=("smallcnn-4", "vit-mini-1"), student_epochs=1,
                            seeds=(0,), limited_fraction=0.2, limited_epochs=2, limited_num_augs=2,
                            transfer_arch="smallcnn-4", transfer_epochs=1, digits_teacher_epochs=1,
                            robustness_samples=40)
# The full profile's arms at smoke size (teach, KD subset, guideline arms, calibration): the suite's check.
PROFILES["smoke-full"] = replace(PROFILES["smoke"], teachers=("smallcnn-4", "vit-mini-1"), teach=True,
                                 kd_students=("smallcnn-4",), guideline_arch="smallcnn-4", calibration=True,
                                 transfer=False, teacher_policy="randaugment")
# Profile fields with a default: an older profile.json may lack them.
DEFAULTS = {f.name: f.default for f in fields(Profile) if f.default is not MISSING}
# Fields an arm's name holds: an --out may add seeds or limited-data stores to a finished run.
NAMED_FIELDS = ("seeds", "limited_num_augs", "limited_temperature")


def robustness_summary(rob: dict[str, Any]) -> dict[str, Any]:
    """Mean accuracy over corruptions (all severities) and over shifts, from ``drkit eval``'s robustness."""
    shifts = rob["mean_shift_accuracy"]
    return {"mca": rob["mean_corruption_accuracy"],
            "shift_acc": float(np.mean(list(shifts.values()))) if shifts else None}


def store_choice(store: drkit.Store, ks: tuple[int, ...] = (1, 2, 3, 5)) -> dict[str, Any]:
    """What a smaller top-k would keep and save: the mean teacher probability mass in each record's
    k largest entries, and the bytes per record at that k (same policy and classes)."""
    if not store.dense:
        return {"note": f"store keeps top-{store.topk} only; mass of smaller k not measured"}
    probs = np.concatenate([np.asarray(store.records(i)["probs"], dtype=np.float32)
                            for i in range(store.num_samples)])  # (N * augs, C), sorted below
    top = -np.sort(-probs, axis=1).cumsum(axis=1) / probs.sum(axis=1, keepdims=True)
    c = store.num_classes
    return {"k": [*ks, c], "mass": [float(top[:, k - 1].mean()) for k in (*ks, c)],
            "bytes_per_record": [record_dtype(store.policy().param_dtype, c, k).itemsize for k in (*ks, c)]}


class Harness:
    def __init__(self, out: Path, profile: Profile, device: str | None, progress: bool) -> None:
        self.out, self.p, self.device, self.progress = out, profile, device, progress
        self.arm_seconds: dict[str, float] = {}  # every arm of this profile: its compute time, cached or not
        (out / "arms").mkdir(parents=True, exist_ok=True)
        self.check_profile()

    def check_profile(self) -> None:
        """Refuse to mix arms of two profiles in one ``--out``: cached arms are keyed by name only. The
        seeds may differ (an arm's name holds its seed): ``--set seeds=0,1`` adds a seed to a finished run;
        so may ``limited_num_augs`` and ``limited_temperature``."""
        path, mine = self.out / "profile.json", json.loads(json.dumps(asdict(self.p)))
        if path.is_file():
            # A field added after that run was made holds its default there.
            theirs = {**json.loads(json.dumps(DEFAULTS)), **json.loads(path.read_text())}
            diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k) and k not in NAMED_FIELDS)
            if diff:
                raise SystemExit(f"{self.out} holds arms of another profile (differs in {', '.join(diff)}); "
                                 "pass another --out, or delete that folder to start over")
        elif any((self.out / "arms").glob("*.json")):
            raise SystemExit(f"{self.out} holds arms but no profile.json, so their profile is unknown; "
                             "pass another --out, or delete that folder to start over")
        else:
            path.write_text(json.dumps(mine, indent=2) + "\n")

    # ------------------------------------------------------------------ caching

    def arm(self, name: str, fn) -> dict[str, Any]:
        result = cached_arm(self.out, name, fn)
        self.arm_seconds[name] = result["arm_seconds"]
        return result

    def cfg(self, epochs: int, seed: int) -> TrainConfig:
        return TrainConfig(epochs=epochs, batch_size=self.p.batch_size, seed=seed, device=self.device)

    # ------------------------------------------------------------------ data

    def data(self) -> tuple[ArrayDataset, ArrayDataset]:
        train, test = drkit.load_dataset("fashion-mnist"), drkit.load_dataset("fashion-mnist:test")
        if self.p.train_samples and self.p.train_samples < len(train):
            idx = stratified_subset(train.labels, self.p.train_samples / len(train), seed=0)
            train = train.subset(idx, name=f"fashion-mnist[{len(idx)}]")
        if self.p.test_samples and self.p.test_samples < len(test):
            test = test.subset(np.arange(self.p.test_samples), name=f"fashion-mnist:test[{self.p.test_samples}]")
        return train, test

    @staticmethod
    def digits28(split: str) -> ArrayDataset:
        d = drkit.load_dataset("digits" if split == "train" else "digits:test")
        up = F.resize(torch.from_numpy(d.images), [28, 28], antialias=True).numpy()
        return ArrayDataset(up, d.labels, classes=d.classes, name=f"digits28{'' if split == 'train' else ':test'}")

    # ------------------------------------------------------------------ arms

    def teach(self, train, test, tag: str, archs, epochs) -> dict[str, Any]:
        """The teacher ensemble by ``drkit teach``: one member per architecture, trained on the training
        split minus a stratified held-out split on which the ensemble's temperature is fitted (never on
        test); the students later train on all of it, the held-out split included."""
        root = self.out / f"teach-{tag}"

        def fit() -> dict[str, Any]:
            train_cfg = replace(TrainConfig(**TEACH_TRAIN_DEFAULTS), epochs=epochs, batch_size=self.p.batch_size,
                                device=self.device)
            r = teach(train, list(archs), root, TeachConfig(policy=self.p.teacher_policy or self.p.policy,
                                                                  augmix=self.p.teacher_augmix,
                                                                  robust_samples=self.p.robustness_samples),
                            train_cfg, eval_data=test, progress=self.progress)
            return r.to_dict()

        result = self.arm(f"teach-{tag}", fit)
        members = [{"arch": m["arch"], "run": m["run"], **m["eval"], "holdout": m["holdout"],
                    "train_seconds": m["train_seconds"]} for m in result["members"]]
        ens = drkit.load_teacher(f"ensemble:{root}", num_classes=train.num_classes, in_chans=1)[0]

        def robustness() -> dict[str, Any]:
            r = evaluate_model(ens, test, robustness_samples=self.p.robustness_samples, device=self.device)
            return robustness_summary(r["robustness"])

        metrics = self.arm(f"teacher-{tag}-ensemble",
                           lambda: classification_metrics(predict_probs(ens, test), test.labels))
        metrics.update(self.arm(f"teacher-{tag}-ensemble-robustness", robustness))
        metrics["temperature"] = result["temperature"]
        return {"members": members, "ensemble": metrics, "runs": [f"ensemble:{root}"]}

    def teachers(self, train, test, tag: str, archs, epochs) -> dict[str, Any]:
        if self.p.teach:
            return self.teach(train, test, tag, archs, epochs)
        runs, members = [], []
        for k, arch in enumerate(archs):
            run_dir = self.out / f"teachers-{tag}" / f"{k}-{arch}"
            m = self.arm(f"teacher-{tag}-{k}", lambda run_dir=run_dir, arch=arch, k=k: train_run(
                train, run_dir, arch=arch, mode="erm", policy=self.p.teacher_policy or self.p.policy, eval_data=test,
                config=self.cfg(epochs, seed=100 + k), progress=self.progress))
            members.append({"arch": arch, "run": str(run_dir), **m["final"], "train_seconds": m["train_seconds"]})
            runs.append(f"run:{run_dir}")

        def ensemble() -> drkit.TeacherEnsemble:
            return drkit.TeacherEnsemble([drkit.load_teacher(r, num_classes=train.num_classes, in_chans=1)[0]
                                          for r in runs])

        def robustness() -> dict[str, Any]:  # what a student of this teacher can inherit
            r = evaluate_model(ensemble(), test, robustness_samples=self.p.robustness_samples, device=self.device)
            return robustness_summary(r["robustness"])

        metrics = self.arm(f"teacher-{tag}-ensemble",
                           lambda: classification_metrics(predict_probs(ensemble(), test), test.labels))
        metrics.update(self.arm(f"teacher-{tag}-ensemble-robustness", robustness))
        return {"members": members, "ensemble": metrics, "runs": runs}

    def store(self, train, teacher_runs, tag: str, *, num_augs: int | None = None, temperature: float | None = None,
              choice: bool = True, policy: str | None = None) -> tuple[drkit.Store, dict[str, Any]]:
        def make() -> dict[str, Any]:
            s = drkit.reinforce(train, teacher_runs, self.out / f"store-{tag}", policy=policy or self.p.policy,
                                num_augs=num_augs or self.p.num_augs, topk=self.p.topk, device=self.device,
                                temperature=temperature or self._store_temperature(), progress=self.progress)
            return {**s.summary(), "run_stats": s.run_stats}

        info = self.arm(f"store-{tag}", make)
        store = drkit.Store.open(info["path"])
        if choice:
            info["choice"] = self.arm(f"store-choice-{tag}", lambda: store_choice(store))
        return store, info

    def _store_temperature(self) -> float | None:
        """The main store's teacher temperature: a ``drkit teach`` ensemble's fitted one (None) unless the
        profile sets another than 1."""
        return None if self.p.teach and self.p.temperature == 1 else self.p.temperature

    def student(self, train, test, store, arch: str, mode: str, seed: int, *, fraction: float = 1.0,
                epochs: int | None = None, init: str | None = None, tag: str = "main",
                reinforced_prob: float = 1.0) -> dict[str, Any]:
        name = (f"{tag}-{arch}-{mode}-s{seed}" + (f"-f{fraction:g}" if fraction < 1 else "")
                + (f"-p{reinforced_prob:g}" if reinforced_prob < 1 else ""))
        run_dir = self.out / "students" / name

        def fit() -> dict[str, Any]:
            m = train_run(train, run_dir, arch=arch, mode=mode, store=store.root,
                          policy=self.p.policy if store.policy_config.name == self.p.policy else None,
                          eval_data=test, init=init, train_fraction=fraction, reinforced_prob=reinforced_prob,
                          config=self.cfg(epochs or self.p.student_epochs, seed), progress=self.progress,
                          trust_store_teachers=True)  # kd: the teachers of the store this harness made
            result = {"arch": arch, "mode": mode, "seed": seed, "fraction": fraction, "run": str(run_dir),
                      **m["final"], "train_seconds": m["train_seconds"],
                      **({"reinforced_prob": reinforced_prob} if reinforced_prob < 1 else {})}
            result.update(self.evaluate(run_dir, test))
            if self.p.calibration:
                result["calibrated"] = cross_fitted_calibration(run_dir, test, device=self.device)
            return result

        return self.arm(name, fit)

    def evaluate(self, run_dir: Path, test: ArrayDataset) -> dict[str, Any]:
        """``drkit eval`` of a finished student (clean, corruptions, shifts), saved as ``eval.json``."""
        r = evaluate_run(run_dir, test, robustness_samples=self.p.robustness_samples, device=self.device)
        (run_dir / "eval.json").write_text(json.dumps(to_jsonable(r), indent=2) + "\n")
        m = r["metrics"]
        return {**robustness_summary(r["robustness"]), "brier": m["brier"], "adaptive_ece": m["adaptive_ece"],
                "eval": str(run_dir / "eval.json")}

    def compare(self, students: list[dict[str, Any]]) -> dict[str, Any]:
        """``drkit compare`` of the first seed's main students; ERM of the first architecture is mCE's reference."""
        seed = self.p.seeds[0]
        rows = [r for r in students if r["seed"] == seed]
        ref = next(i for i, r in enumerate(rows) if r["mode"] == "erm")
        out = self.out / "compare"
        drkit.compare([r["eval"] for r in rows], out, reference=ref,
                      title=f"Fashion-MNIST+ students, seed {seed}")
        return {"dir": str(out), "reference": rows[ref]["run"], "plots": sorted(
            str(q.relative_to(out)) for q in (out / "plots").glob("*.png"))}

    def run(self) -> dict[str, Any]:
        p = self.p
        train, test = self.data()
        res: dict[str, Any] = {"profile": asdict(p), "data": {"train": train.name, "test": test.name,
                                                              "train_bytes": train.nbytes()}}
        res["teachers"] = self.teachers(train, test, "fmnist", p.teachers, p.teacher_epochs)
        store, res["store"] = self.store(train, res["teachers"]["runs"], "fmnist")
        kd = p.students if p.kd_students is None else p.kd_students
        res["students"] = [self.student(train, test, store, a, m, s)
                           for s in p.seeds for a in p.students for m in ("erm", "dr", "kd") if m != "kd" or a in kd]
        if p.guideline_arch:
            res["guideline"] = self.guideline(train, test, res["teachers"]["runs"], p.guideline_arch, store)
        res["limited"] = [r for s in p.seeds for a in p.students[:1] for r in self.limited(train, test, store, res["teachers"]["runs"], a, s)]
        if p.transfer:
            res["transfer"] = self.transfer(store)
        res["compare"] = self.compare(res["students"])
        res["arm_seconds"] = dict(self.arm_seconds)  # their sum: a cold run's wall time on this machine
        return res

    def guideline(self, train, test, teacher_runs, arch: str, store) -> list[dict[str, Any]]:
        """The paper's second guideline ("balance reinforcement difficulty and model complexity") for the
        smallest student: DR from a ``cropflip`` store of the same teachers, and DR from the main store
        with ml-dr's ``p`` (``reinforced_prob``), every seed; compared with its ERM and DR rows."""
        easy, _ = self.store(train, teacher_runs, "cropflip", policy="cropflip", choice=False)
        rows = []
        for s in self.p.seeds:
            rows.append({**self.student(train, test, easy, arch, "dr", s, tag="cropflip"), "variant": "cropflip store"})
            rows.append({**self.student(train, test, store, arch, "dr", s, reinforced_prob=self.p.reinforced_prob),
                         "variant": f"p = {self.p.reinforced_prob:g}"})
        return rows

    def limited(self, train, test, store, teacher_runs, arch: str, seed: int) -> list[dict[str, Any]]:
        """ERM vs DR on ``limited_fraction`` of the training set (the same images: ``train_run``'s stratified
        subset for this seed). With ``limited_num_augs`` the DR student gets a store of its own images with
        that many views, so that ``limited_epochs`` epochs do not repeat the main store's few views, made
        at ``limited_temperature`` (named in the arm when it is not 1)."""
        p = self.p
        kw = {"epochs": p.limited_epochs, "tag": "limited"}
        erm = self.student(train, test, store, arch, "erm", seed, fraction=p.limited_fraction, **kw)
        if not p.limited_num_augs:
            return [erm, self.student(train, test, store, arch, "dr", seed, fraction=p.limited_fraction, **kw)]
        idx = stratified_subset(train.labels, p.limited_fraction, seed=seed)
        sub = train.subset(idx, name=f"{train.name}[{p.limited_fraction:g}, seed {seed}]")
        t = p.limited_temperature or self._store_temperature()
        tag = f"limited-s{seed}-a{p.limited_num_augs}" + (f"-t{t:g}" if t not in (1, None) else "")
        sub_store, _ = self.store(sub, teacher_runs, tag, num_augs=p.limited_num_augs, temperature=t, choice=False)
        dr = self.student(sub, test, sub_store, arch, "dr", seed, epochs=p.limited_epochs, tag=tag)
        return [erm, {**dr, "fraction": p.limited_fraction}]  # trained on the subset itself, at fraction 1

    def transfer(self, fm_store: drkit.Store) -> dict[str, Any]:
        p = self.p
        d_train, d_test = self.digits28("train"), self.digits28("test")
        dt = self.teachers(d_train, d_test, "digits", p.teachers, p.digits_teacher_epochs)
        d_store, d_info = self.store(d_train, dt["runs"], "digits")
        rows = []
        for seed in p.seeds:
            for pre in ("none", "erm", "dr"):  # pretrained on nothing, Fashion-MNIST, Fashion-MNIST+
                init = None if pre == "none" else str(self.out / "students" / f"main-{p.transfer_arch}-{pre}-s{seed}")
                for ft in ("erm", "dr"):  # fine-tuned on digits, digits+
                    r = self.student(d_train, d_test, d_store, p.transfer_arch, ft, seed, epochs=p.transfer_epochs,
                                     init=init, tag=f"transfer-{pre}")
                    rows.append({**r, "pretrain": pre, "finetune": ft})
        return {"teachers": dt, "store": d_info, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description="Fashion-MNIST+: DR vs ERM vs KD across architectures")
    add_harness_args(ap, PROFILES, quick="the quick profile (< 20 min on 2 CPU cores)",
                     out="runs/fmnist_plus[-PROFILE]", example="--set teacher_epochs=30 --set "
                     "students=smallcnn-16,resnet18 --set teacher_policy=none (teachers train with the students' policy)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    name, profile = harness_profile(args, PROFILES)
    out = args.out or Path("runs") / ("fmnist_plus" if name == "full" else f"fmnist_plus-{name}")
    h = Harness(out, profile, args.device, progress=not args.quiet)
    t0 = time.perf_counter()
    results = h.run()
    results["wall_seconds_this_call"] = time.perf_counter() - t0
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    command = harness_command("benchmarks.fmnist_plus.fmnist_harness", name, args.set, args.out)
    md = render(results, command=command)
    (out / "report.md").write_text(md)
    if args.report:  # the Markdown next to a copy of drkit compare's plots (REPORT_DIR/<stem>/*.png)
        plots = args.report.parent / args.report.stem
        plots.mkdir(parents=True, exist_ok=True)
        for rel in results["compare"]["plots"]:
            shutil.copy2(Path(results["compare"]["dir"]) / rel, plots / Path(rel).name)
        write_report(args.report, "# Fashion-MNIST+: DR vs ERM vs online KD across architectures\n\n"
                     + render(results, command=command, plots_dir=args.report.stem))
    print(md)


if __name__ == "__main__":
    main()

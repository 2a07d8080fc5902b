"""Classification Accuracy Score of drkit's offline generator, as issue 6 defines it.

A class-conditional generator (``drkit synth fit-generator``'s model) is fit on ``--train-images``
real Fashion-MNIST training images; ``--cas-images`` images are generated ("A photo of a c, c, and
c", an equal number per class); a classifier trained only on them is tested on the real test set.
The same classifier trained on the generator's real training images is the reference. The
synthetic-support benchmark (``synth_harness``) measures CAS for its limited-data generator (1,000 images);
this script measures the generator at the size CAS is usually quoted for.

    python -m benchmarks.synth.cas                           # 10,000 real images, 6,000 steps: CAS 76.5 %
    python -m benchmarks.synth.cas --steps 3000              # half the steps: CAS 64.3 %
    python -m benchmarks.synth.cas --steps 1500 --cas-images 2000 --out runs/synth-cas-small

Cached in ``--out``: the generator resumes or is reused, the CAS arm is skipped when done.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

import drkit
from benchmarks._common import command_line
from benchmarks.synth.synth_harness import PROFILES, Bench, generator_indices
from drkit.synth import LocalDiffusionConfig, fit_local_generator


def main() -> None:
    ap = argparse.ArgumentParser(description="CAS of the offline generator on Fashion-MNIST")
    ap.add_argument("--train-images", type=int, default=10000, help="real images the generator fits (default 10,000)")
    ap.add_argument("--steps", type=int, default=6000, help="generator training steps (default 6,000)")
    ap.add_argument("--width", type=int, default=16, help="UNet base channels (default 16)")
    ap.add_argument("--sample-steps", type=int, default=10, help="DDIM steps per image (default 10)")
    ap.add_argument("--cas-images", type=int, default=10000, help="generated training images (default 10,000)")
    ap.add_argument("--epochs", type=int, default=15, help="classifier epochs (default 15)")
    ap.add_argument("--test-images", type=int, help="the first N real test images (default: all 10,000)")
    ap.add_argument("--out", type=Path, help="cache folder (default: runs/synth-cas-STEPS)")
    ap.add_argument("--device", help="cuda or cpu (default: best available)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args()
    args.out = args.out or Path(f"runs/synth-cas-{args.steps}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)

    full, test = drkit.load_dataset("fashion-mnist"), drkit.load_dataset("fashion-mnist:test")
    if args.test_images:
        test = test.subset(np.arange(args.test_images), name=f"fashion-mnist:test[{args.test_images}]")
    idx = generator_indices(full.labels, args.train_images)
    train = full.subset(idx, name=f"fashion-mnist[{len(idx)}]")
    gen_cfg = LocalDiffusionConfig(width=args.width, train_steps=args.steps, sample_steps=args.sample_steps,
                                   save_every=500, device=args.device)
    profile = replace(PROFILES["quick"], generator=gen_cfg, cas_images=args.cas_images, cas_epochs=args.epochs)
    bench = Bench(args.out, profile, args.device, progress=not args.quiet)
    t0 = time.perf_counter()
    gen = fit_local_generator(train, args.out / "generator", gen_cfg, progress=not args.quiet)
    fit_seconds = time.perf_counter() - t0
    cas = bench.cas(gen, train, test)
    generator = json.loads((args.out / "generator" / "generator.json").read_text())
    result = {"command": command_line(), "train_images": len(train),
              "test_images": len(test),
              "generator": generator, "generator_seconds_this_call": fit_seconds, **cas}
    (args.out / "cas.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"CAS {100 * cas['cas']['top1']:.2f} % on {cas['images']} generated images "
          f"(real reference {100 * cas['real']['top1']:.2f} % on {len(train)} real images); "
          f"generation {cas['images_per_second']:.1f} images/s; samples: {args.out / 'samples.png'}")


if __name__ == "__main__":
    main()

"""Tiny finished runs for the evaluation tests: a SmallCNN of width 4 fitted in well under a second
on un-augmented images, written in the layout ``drkit train`` writes (``config.json`` +
``model.safetensors``), so ``drkit.runs.load_run_model`` and ``drkit eval`` read it as a real run."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from drkit.data import ImageDataset
from drkit.models import SmallCNN


def make_run(root: Path, dataset: ImageDataset, *, steps: int = 60, width: int = 4, seed: int = 0,
             mode: str = "erm", eval_data: str | None = "digits:test") -> Path:
    """Fit ``smallcnn-{width}`` on ``dataset`` for ``steps`` full-batch-ish steps; return the run dir."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a width-4 net gains nothing from threads, and loses a lot on a busy machine
    try:
        return _fit_and_write(root, dataset, steps=steps, width=width, seed=seed, mode=mode, eval_data=eval_data)
    finally:
        torch.set_num_threads(threads)


def _fit_and_write(root: Path, dataset: ImageDataset, *, steps: int, width: int, seed: int, mode: str,
                   eval_data: str | None) -> Path:
    c, h, w = dataset.image_shape
    torch.manual_seed(seed)
    model = SmallCNN(c, dataset.num_classes, width=width)
    x = torch.stack([dataset.image(i) for i in range(len(dataset))]).float() / 255.0
    y = torch.as_tensor(dataset.labels)
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (min(256, len(x)),), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    root.mkdir(parents=True, exist_ok=True)
    config = {"arch": f"smallcnn-{width}", "mode": mode, "num_classes": dataset.num_classes, "in_chans": c,
              "image_size": [h, w], "dataset": dataset.name, "eval_data": eval_data}
    (root / "config.json").write_text(json.dumps(config))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(root / "model.safetensors"))
    return root

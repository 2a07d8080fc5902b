"""Running a model over images, shared by every stage: the device, probabilities (a classifier's
softmax, or a teacher ensemble's own output), batches of a dataset's images, and predictions."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from .data import ImageDataset

__all__ = ["best_device", "probabilities", "image_batches", "predict_batches", "predict_probs"]


def best_device() -> torch.device:
    """CUDA, then Apple MPS, then CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Class probabilities ``(B, classes)`` of ``model`` on ``x``: the softmax of a classifier's
    logits, or the output as it is of a model that says it returns probabilities
    (``outputs_probabilities = True``, as :class:`~drkit.reinforcement.teachers.TeacherEnsemble` does)."""
    y = model(x).float()
    return y if getattr(model, "outputs_probabilities", False) else torch.softmax(y, -1)


def image_batches(dataset: ImageDataset, indices: np.ndarray, batch_size: int) -> Iterator[tuple[int, torch.Tensor]]:
    """``(position of the first image, uint8 batch (B, C, H, W))`` over ``dataset[indices]``."""
    for a in range(0, len(indices), batch_size):
        yield a, torch.stack([dataset.image(int(i)) for i in indices[a:a + batch_size]])


@torch.no_grad()
def predict_batches(model: nn.Module, batches: Iterator[torch.Tensor] | Sequence[torch.Tensor],
                    device: torch.device) -> np.ndarray:
    """Class probabilities ``(N, classes)`` (float64, :func:`probabilities`) of
    ``model`` over ``uint8`` or float batches."""
    out = []
    for x in batches:
        x = x.to(device)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        out.append(probabilities(model, x).double().cpu())
    return torch.cat(out).numpy()


def predict_probs(model: nn.Module, dataset: ImageDataset, *, batch_size: int = 512,
                  device: torch.device | None = None) -> np.ndarray:
    """Class probabilities ``(N, classes)`` on the un-augmented images (float64): a classifier's
    softmax, or a :class:`~drkit.reinforcement.teachers.TeacherEnsemble`'s own probabilities."""
    device = device or next(model.parameters()).device
    model.eval().to(device)
    return predict_batches(model, (x for _, x in image_batches(dataset, np.arange(len(dataset)), batch_size)), device)

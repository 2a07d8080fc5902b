"""An image folder of mixed image sizes, as real folders are (shared by the tests that need one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def mixed_size_folder(root: Path, n: int = 12, classes: int = 3, seed: int = 0) -> Path:
    """``root/c<k>/<i>.png``: ``n`` random RGB images, sides 14..39 px, spread over ``classes`` folders."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k in range(n):
        h, w = int(rng.integers(14, 40)), int(rng.integers(14, 40))
        (root / f"c{k % classes}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / f"c{k % classes}" / f"{k}.png")
    return root

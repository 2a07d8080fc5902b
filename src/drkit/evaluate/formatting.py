"""Building blocks of drkit's reports: tables as HTML and Markdown, PNGs (matplotlib figures and
images) as files and as base64 data URIs, and one self-contained HTML page (inline CSS, inline
images, no script, nothing fetched)."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

Cell = str | float | int | None


def fmt_pct(v: float | None, digits: int = 1) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.{digits}f}%"


def fmt_num(v: float | None, digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> str:
    def cell(v: Cell) -> str:
        return str(v if v is not None else "–").replace("|", "\\|")

    lines = ["| " + " | ".join(map(cell, headers)) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def html_table(headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v if v is not None else '–'))}</td>" for v in r)
                   + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure_png(fig: Any) -> bytes:
    """A matplotlib ``Figure`` as PNG bytes (the figure is not kept by any global state)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def image_png(image: torch.Tensor, *, min_side: int = 96) -> bytes:
    """A ``uint8`` ``(C, H, W)`` image as PNG, upscaled (nearest) so its short side is at least
    ``min_side`` pixels: an 8×8 digit must be visible to a human checking it."""

    arr = image.detach().cpu().numpy()
    arr = arr[0] if arr.shape[0] == 1 else np.transpose(arr[:3], (1, 2, 0))
    img = Image.fromarray(np.ascontiguousarray(arr))
    factor = max(1, math.ceil(min_side / min(img.size)))
    if factor > 1:
        img = img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def img_tag(png: bytes, alt: str) -> str:
    return f'<img src="{data_uri(png)}" alt="{html.escape(alt)}">'


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1200px;
     padding:0 1rem;color:#1d1d1f;background:#fff;line-height:1.45}
h1{font-size:1.6rem;border-bottom:2px solid #e5e5e5;padding-bottom:.4rem}
h2{font-size:1.25rem;margin-top:2rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #d0d0d0;padding:.3rem .6rem;text-align:right}
th{background:#f3f4f6}
td:first-child,th:first-child{text-align:left}
tbody tr:nth-child(even){background:#fafafa}
img{max-width:100%}
.note{color:#555;font-size:.9rem}
.gallery{display:flex;flex-wrap:wrap;gap:.8rem}
.gallery figure{margin:0;padding:.4rem;border:1px solid #ddd;border-radius:4px;width:140px;text-align:center}
.gallery img{width:120px;height:auto;image-rendering:pixelated}
.gallery figcaption{font-size:.78rem}
"""


def html_page(title: str, sections: Sequence[str]) -> str:
    """A complete HTML document: ``sections`` are HTML fragments placed in order."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>\n" + "\n".join(sections) + "\n</body></html>\n")

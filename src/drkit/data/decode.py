"""Decoding image files and in-memory images into drkit's one image form: a ``uint8`` ``(C, H, W)``
tensor with 1 (gray) or 3 (RGB) channels, by one set of rules for every reader."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.io import ImageReadMode, decode_image, read_file

from ..errors import DataError

__all__ = ["BACKGROUND", "IMAGE_SUFFIXES", "to_uint8_channels", "pil_to_tensor", "decode_file", "unreadable_reason",
           "read_image", "decode_bytes", "as_uint8_chw"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
BACKGROUND = 255  # transparent pixels are composited onto white


def to_uint8_channels(image: torch.Tensor, channels: int | None = None) -> torch.Tensor:
    """A decoded ``(C, H, W)`` image (C: 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA; uint8 or uint16) as
    uint8 with ``channels`` channels (1 or 3; None: 1 for gray sources, 3 for colour ones).

    The one set of rules every drkit reader applies: 16-bit values are scaled to 8 bit
    (``round(v * 255 / 65535)``), alpha is composited onto a white background (:data:`BACKGROUND`),
    RGB becomes gray by ITU-R 601-2 luma (as PIL's ``convert("L")``), gray becomes RGB by repetition.
    """
    if image.ndim != 3 or not 1 <= image.shape[0] <= 4:
        raise DataError(f"expected a (C, H, W) image with 1 to 4 channels, got shape {tuple(image.shape)}")
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1 (gray) or 3 (RGB), got {channels}")
    if image.dtype == torch.uint8 and image.shape[0] in (1, 3) and channels in (None, image.shape[0]):
        return image.contiguous()  # already drkit's form: the int32 round trip below cost ~4 ms per image
    x = image.to(torch.int32)
    if image.dtype == torch.uint16 or image.dtype == torch.int32:  # 16-bit PNG (int32: PIL's "I" mode)
        if int(x.min()) < 0 or int(x.max()) > 65535:
            raise DataError(f"image values {int(x.min())}..{int(x.max())} are not 16-bit; convert the image to 8 bit")
        x = (x * 255 + 32767) // 65535
    elif image.dtype != torch.uint8:
        raise DataError(f"unsupported image dtype {image.dtype}; use 8- or 16-bit images")
    if x.shape[0] in (2, 4):  # composite the colour onto the background by its alpha
        color, alpha = x[:-1], x[-1:]
        x = (color * alpha + BACKGROUND * (255 - alpha) + 127) // 255
    if channels == 1 and x.shape[0] == 3:
        x = (x[0] * 19595 + x[1] * 38470 + x[2] * 7471 + 0x8000) >> 16
        x = x[None]
    elif channels == 3 and x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return x.to(torch.uint8).contiguous()


def pil_to_tensor(image: Any) -> torch.Tensor:
    """A PIL image as its raw ``(C, H, W)`` tensor: gray/RGB with their alpha, 16-bit kept."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        array = np.array(image, dtype=np.uint16)
    elif mode == "I":
        array = np.array(image, dtype=np.int32)
    else:
        plain = {"1": "L", "L": "L", "LA": "LA", "La": "LA", "RGB": "RGB", "RGBA": "RGBA", "RGBa": "RGBA",
                 "PA": "RGBA", "P": "RGBA" if "transparency" in image.info else "RGB"}
        mode = plain.get(mode, "RGB")  # CMYK, YCbCr, LAB, HSV, F: as RGB
        if mode != image.mode:
            image = image.convert(mode)
        array = np.array(image)  # a writable copy: np.asarray of a PIL image is read-only
    t = torch.from_numpy(np.ascontiguousarray(array))
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1)


def decode_file(path: Path) -> torch.Tensor:
    """The raw decoded image (torchvision's decoders; PIL for what they do not read, e.g. BMP)."""

    try:
        img = decode_image(read_file(str(path)), mode=ImageReadMode.UNCHANGED)
    except Exception:  # torchvision raises RuntimeError with little context; PIL says more, reads more

        with Image.open(path) as im:
            im.load()
            img = pil_to_tensor(im)
    return img[0] if img.ndim == 4 else img  # an animated GIF: its first frame


def unreadable_reason(path: Path, error: BaseException) -> str:
    if path.stat().st_size == 0:
        return "empty file (0 bytes)"
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


def read_image(path: str | os.PathLike[str], channels: int | None = None) -> torch.Tensor:
    """The one way drkit reads an image file: decoded, then :func:`to_uint8_channels` (uint8
    ``(channels, H, W)``; 16-bit scaled, alpha composited onto white, gray <-> RGB). Every command
    (``reinforce``, ``train``, ``eval``) reads image folders through it.

    Raises :class:`DataError` naming the file when it cannot be decoded.
    """
    path = Path(path)
    try:
        img = decode_file(path)
    except Exception as e:
        raise DataError(f"cannot decode image {path}: {unreadable_reason(path, e)}. Remove or replace the file.") from None
    try:
        return to_uint8_channels(img, channels)
    except DataError as e:
        raise DataError(f"{path}: {e}") from None


def decode_bytes(data: bytes, where: str, channels: int | None = None) -> torch.Tensor:
    """An encoded image held in memory (a tar member, a parquet cell) read by the rules of
    :func:`read_image`: the same bytes decode to the same tensor whether they come from a file,
    a webdataset shard or a Hugging Face dataset. ``where`` names the image in errors."""
    try:
        img = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.UNCHANGED)
    except Exception:  # as decode_file: PIL reads what torchvision does not (BMP, TIFF, PPM)
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                img = pil_to_tensor(im)
        except Exception as e:
            why = ("empty (0 bytes)" if not data else "not an image in a format PIL or torchvision reads"
                   if isinstance(e, UnidentifiedImageError) else (str(e).strip().splitlines() or [type(e).__name__])[0][:200])
            raise DataError(f"cannot decode image {where}: {why}. Remove or replace it.") from None
    img = img[0] if img.ndim == 4 else img
    try:
        return to_uint8_channels(img, channels)
    except DataError as e:
        raise DataError(f"{where}: {e}") from None


def as_uint8_chw(image: Any, where: str) -> torch.Tensor:
    """PIL image, array or tensor -> uint8 (C, H, W) tensor (PIL images by the rules of :func:`read_image`)."""
    if hasattr(image, "convert") and hasattr(image, "mode"):  # PIL
        try:
            return to_uint8_channels(pil_to_tensor(image))
        except DataError as e:
            raise DataError(f"{where}: {e}") from None
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image))
        if image.ndim == 3 and image.shape[-1] in (1, 3) and image.shape[0] not in (1, 3):
            image = image.permute(2, 0, 1)
    if not isinstance(image, torch.Tensor):
        raise DataError(f"{where}: expected a PIL image, array or tensor, got {type(image).__name__}")
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3:
        raise DataError(f"{where}: expected an image (C, H, W) or (H, W), got shape {tuple(image.shape)}")
    if image.dtype.is_floating_point:
        if image.min() < 0 or image.max() > 1:
            raise DataError(f"{where}: float images must be in [0, 1] (un-normalized); got "
                            f"[{float(image.min()):.3g}, {float(image.max()):.3g}]")
        image = (image * 255).round().to(torch.uint8)
    elif image.dtype != torch.uint8:
        raise DataError(f"{where}: unsupported image dtype {image.dtype}; use uint8 or float in [0, 1]")
    return image.contiguous()

"""Image loading shared by every stage: one function decides how any file on disk becomes H×W×3 uint8 pixels."""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from srpipe.fsio import atomic_path

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".ppm", ".pgm", ".webp")
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


class ImageError(ValueError):
    """An image file cannot be used; the message names the file."""


@dataclass(frozen=True)
class LoadedImage:
    pixels: np.ndarray  # H×W×3 uint8
    gray: bool  # the source had one channel: its value is the Y channel for the metrics (Set14 `bridge`)
    path: Path

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.pixels.shape[0], self.pixels.shape[1]


def _to_uint8(img: Image.Image) -> np.ndarray:
    """One-channel modes to uint8: 16/32-bit integers are rescaled (65535 → 255), floats are taken as 0..1 or 0..255."""
    a = np.asarray(img)
    if a.dtype == np.uint8:
        return a
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    a = a.astype(np.float64)
    if img.mode == "F":
        peak = 1.0 if a.max(initial=0) <= 1.0 else 255.0
    else:
        peak = 65535.0 if a.max(initial=0) > 255 or img.mode.startswith("I;16") else 255.0
    return np.clip(np.rint(a * (255.0 / peak)), 0, 255).astype(np.uint8)


def load_image(path: str | os.PathLike[str]) -> LoadedImage:
    """Decode `path` to RGB uint8, applying EXIF orientation; gray, palette, alpha and 16-bit sources are normalised.

    Raises:
        ImageError: the file is missing, not an image, corrupt or truncated.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()  # decode now, so a truncated file fails here with its name rather than later
            im = ImageOps.exif_transpose(im)
            mode = im.mode
            if mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
                mode = im.mode
            if mode in _GRAY_MODES:
                gray = _to_uint8(im.convert("L") if mode in ("1", "LA") else im)
                return LoadedImage(np.repeat(gray[:, :, None], 3, axis=2), True, path)
            if mode == "RGB;16" or (mode == "RGB" and np.asarray(im).dtype != np.uint8):
                rgb = _to_uint8(im)
            else:
                rgb = np.asarray(im.convert("RGB"))  # RGBA drops alpha; CMYK/YCbCr convert
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{path}: cannot decode image ({e})") from e
    return LoadedImage(np.ascontiguousarray(rgb), False, path)


def pixel_digest(path: str | os.PathLike[str]) -> str:
    """`sha256:<hex>` of an image as srpipe sees it: size, gray flag and the decoded RGB bytes.

    Pixels, not file bytes: two PNG encoders (or a BMP and its PNG) of one image agree, so the catalog can check a
    copy of a dataset from any mirror (`catalog.yaml` `images`).
    """
    from srpipe.integrity import new_hash, tagged

    img = load_image(path)
    h = new_hash()
    h.update(f"{img.size[0]}x{img.size[1]}:{'gray' if img.gray else 'rgb'}\n".encode())
    h.update(img.pixels.tobytes())
    return tagged(h)


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files directly inside `folder`, sorted by name (hidden files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder of images")
    return sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def _chunk(f: BinaryIO, kind: bytes, data: bytes) -> None:
    f.write(struct.pack(">I", len(data)) + kind)
    f.write(data)  # not concatenated: a band of noise deflates to its own size, and each copy would cost that
    f.write(struct.pack(">I", zlib.crc32(data, zlib.crc32(kind))))


def save_png(path: str | os.PathLike[str], pixels: np.ndarray, gray: bool = False) -> None:
    """Write H×W×3 (or H×W) uint8 pixels atomically as PNG; `gray` stores one channel (a gray source stays gray).

    Rows are filtered and deflated a band at a time, so writing a 1 GB result costs a few MB beside it rather than
    the whole-image copies PIL makes (4 bytes per RGB pixel); zlib level 6, PIL's default.
    """
    a = np.asarray(pixels)
    if a.dtype != np.uint8:
        raise TypeError(f"save_png wants uint8 pixels, got {a.dtype}")
    a = a[:, :, :1] if gray and a.ndim == 3 else a.reshape(*a.shape[:2], -1)
    h, w, c = a.shape
    if c not in (1, 3):
        raise ValueError(f"save_png wants 1 or 3 channels, got {c}")
    band = max(1, 2**20 // (w * c + 1))  # rows per ~1 MB: zlib's output buffer for a band grows to ~3× it
    with atomic_path(path, suffix=".png") as tmp, open(tmp, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        _chunk(f, b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0 if c == 1 else 2, 0, 0, 0))
        z = zlib.compressobj(6)
        for y in range(0, h, band):
            rows = a[y : y + band].reshape(-1, w * c)
            # Filter "Sub" (PNG spec 9.2): each byte minus the same channel of the pixel to its left, modulo 256.
            filtered = np.empty((len(rows), w * c + 1), np.uint8)
            filtered[:, 0] = 1
            filtered[:, 1 : c + 1] = rows[:, :c]
            np.subtract(rows[:, c:], rows[:, :-c], out=filtered[:, c + 1 :])
            if data := z.compress(filtered.data):
                _chunk(f, b"IDAT", data)
        _chunk(f, b"IDAT", z.flush())
        _chunk(f, b"IEND", b"")

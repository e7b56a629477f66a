"""Image loading shared by every stage: one function decides how any file on disk becomes H×W×3 uint8 pixels."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files directly inside `folder`, sorted by name (hidden files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder of images")
    return sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def save_png(path: str | os.PathLike[str], pixels: np.ndarray, gray: bool = False) -> None:
    """Write H×W×3 (or H×W) uint8 pixels atomically as PNG; `gray` stores one channel (a gray source stays gray)."""
    a = np.asarray(pixels)
    if a.dtype != np.uint8:
        raise TypeError(f"save_png wants uint8 pixels, got {a.dtype}")
    img = Image.fromarray(a[:, :, 0] if gray and a.ndim == 3 else a)
    with atomic_path(path, suffix=".png") as tmp:
        img.save(tmp, format="PNG")

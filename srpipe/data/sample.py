"""The embedded `sample` dataset: real photographs that ship inside the installed scikit-image, so never fetched.

The files are found through the package's import spec, without importing skimage (which takes seconds and pulls in
scipy); they are read from disk only, never through skimage's downloader.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from srpipe.data.download import normalize_image
from srpipe.fsio import atomic_dir

log = logging.getLogger(__name__)

# A fixed split, so every machine gets the same sets. Test holds the three classic colour photographs plus one gray
# image (the metrics' 1-channel path, like Set14's bridge); the motorcycle stereo pair stays together in train;
# valid (for picking the best checkpoint) is kept apart from test so that choice never sees the test images.
SPLITS: dict[str, tuple[str, ...]] = {
    "train": (
        "hubble_deep_field.jpg",
        "retina.jpg",
        "motorcycle_left.png",
        "motorcycle_right.png",
        "moon.png",
        "brick.png",
        "grass.png",
        "gravel.png",
    ),
    "valid": ("rocket.jpg", "ihc.png"),
    "test": ("astronaut.png", "chelsea.png", "coffee.png", "camera.png"),
}


def skimage_data_dir() -> Path:
    """The `data/` folder of the installed scikit-image.

    Raises:
        FileNotFoundError: scikit-image is not installed, or has no `data/` folder.
    """
    spec = importlib.util.find_spec("skimage")  # finds a top-level package without running its __init__
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "data").is_dir():
            return Path(location) / "data"
    raise FileNotFoundError("the `sample` dataset is scikit-image's bundled photographs: pip install scikit-image")


def write_sample(dest_root: str | os.PathLike[str]) -> dict[str, int]:
    """Write the sample images as PNG into `dest_root/train|test/`, one-channel images kept one-channel.

    Raises:
        FileNotFoundError: scikit-image is missing, or its wheel lacks one of the images (named in the message).
        ImageError: a bundled image cannot be decoded.
    """
    data, dest_root = skimage_data_dir(), Path(dest_root)
    missing = [name for names in SPLITS.values() for name in names if not (data / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{data}: scikit-image's bundled images {missing} are missing; reinstall it")
    for split, names in SPLITS.items():
        with atomic_dir(dest_root / split) as tmp:
            for name in names:
                with open(data / name, "rb") as f:
                    normalize_image(f, str(data / name), tmp / f"{Path(name).stem}.png")
        log.info("sample: %d images from %s -> %s", len(names), data, dest_root / split)
    return {split: len(names) for split, names in SPLITS.items()}

"""Stage `prepare`: decode the training and validation images once into patch stores (see srpipe.data.store)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from tqdm import tqdm

from srpipe.config import PrepareParams
from srpipe.data.images import list_images, load_image
from srpipe.data.store import FORMAT_VERSION, grid, lcm
from srpipe.degrade import bicubic_lr, modcrop, resize
from srpipe.fsio import atomic_dir, write_json
from srpipe.integrity import file_digest, new_hash, tagged

if TYPE_CHECKING:
    import hashlib

log = logging.getLogger(__name__)


def _sources(raw_dir: Path, specs: Sequence[str]) -> list[tuple[str, Path]]:
    """(dataset, image path) for every "<dataset>/<split>" folder that exists; absent/unavailable ones are logged."""
    found = []
    for spec in specs:
        folder = raw_dir / spec
        if not folder.is_dir() or (folder.parent / "UNAVAILABLE.txt").exists():
            log.warning("prepare: %s is not in %s (not downloaded or unavailable): skipped", spec, raw_dir)
            continue
        found += [(spec.split("/")[0], p) for p in list_images(folder)]
    return found


def _centre_crop(img: np.ndarray, side: int) -> np.ndarray:
    h, w = img.shape[:2]
    y, x = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return img[y : y + side, x : x + side]


def _write(f: BinaryIO, h: hashlib._Hash, pixels: np.ndarray) -> None:
    data = pixels.tobytes()
    f.write(data)
    h.update(data)


def _write_image(
    files: dict[str, BinaryIO],
    hashes: dict[str, hashlib._Hash],
    offsets: dict[str, int],
    row: dict,
    hr: np.ndarray,
    scales: tuple[int, ...],
    params: PrepareParams,
) -> list[tuple[int, int, int, int, int]]:
    """Append one HR image and its LR at every scale to the store files; returns its index windows."""
    patches = []
    _write(files["hr"], hashes["hr"], hr)
    offsets["hr"] += hr.size
    for s in scales:
        _, lr = bicubic_lr(hr, s)
        row[f"lr_x{s}_offset"] = offsets[f"lr_x{s}"]
        _write(files[f"lr_x{s}"], hashes[f"lr_x{s}"], lr)
        offsets[f"lr_x{s}"] += lr.size
        h, w = lr.shape[:2]
        size = min(params.lr_patch, h, w)
        ys, xs = grid(h, size, params.stride), grid(w, size, params.stride)
        patches += [(row["id"], s, y, x, size) for y in ys for x in xs]
    return patches


def _write_store(
    out: Path,
    sources: list[tuple[str, Path]],
    params: PrepareParams,
    scales: tuple[int, ...],
    split: str,
    progress: bool,
) -> dict[str, int]:
    import pandas as pd

    step = lcm(scales)  # HR is cropped to a multiple of every scale, so each LR is exact
    rows, patches, skipped = [], [], []
    with contextlib.ExitStack() as stack:
        names = ["hr", *(f"lr_x{s}" for s in scales)]
        files = {name: stack.enter_context(open(out / f"{name}.u8", "wb")) for name in names}
        hashes = {name: new_hash() for name in names}  # hashed as written: no second read of the arrays
        offsets = dict.fromkeys(files, 0)
        factors = (1.0, *params.rescale) if split == "train" else (1.0,)
        for dataset, path in tqdm(sources, desc=f"prepare {split}", unit="img", disable=not progress):
            img = load_image(path)  # a corrupt file stops the stage with an error naming it
            for factor in factors:
                hr = img.pixels if factor == 1.0 else resize(img.pixels, factor)  # FSRCNN Sec. 4.1
                if split == "valid":
                    hr = _centre_crop(hr, params.max_valid_side)
                hr = np.ascontiguousarray(modcrop(hr, step))
                min_lr = min(hr.shape[:2]) // max(scales)
                need = params.lr_patch if split == "train" else 16  # validation needs room for SSIM's window + crop
                if min_lr < need:
                    what = f"{path}" + (f" downscaled by {factor:g}" if factor != 1.0 else "")
                    log.warning("prepare: %s (%d×%d) is smaller than the patch size: skipped", what, *hr.shape[1::-1])
                    skipped.append(what)
                    continue
                row = {"id": len(rows), "name": path.stem, "dataset": dataset, "rescale": factor}
                row |= {"height": hr.shape[0], "width": hr.shape[1], "gray": img.gray, "hr_offset": offsets["hr"]}
                patches += _write_image(files, hashes, offsets, row, hr, scales, params)
                rows.append(row)
    if not rows:
        raise ValueError(f"prepare: the {split} set is empty (sources: {len(sources)}, too small: {len(skipped)})")
    pd.DataFrame(rows).to_parquet(out / "images.parquet", index=False)
    cols = ["image_id", "scale", "y", "x", "size"]
    pd.DataFrame(patches, columns=cols).astype("int32").to_parquet(out / "patches.parquet", index=False)
    meta = {"format": FORMAT_VERSION, "split": split, "scales": list(scales), "images": len(rows)}
    meta |= {"patches": len(patches), "skipped": skipped, "params": dataclasses.asdict(params)}
    digests = {f"{name}.u8": tagged(h) for name, h in hashes.items()}
    meta["digests"] = digests | {name: file_digest(out / name) for name in ("images.parquet", "patches.parquet")}
    write_json(out / "meta.json", meta)
    return {"images": len(rows), "patches": len(patches), "skipped": len(skipped)}


def prepare(
    raw_dir: Path, out_dir: Path, params: PrepareParams, scales: tuple[int, ...], progress: bool = True
) -> dict[str, dict[str, int]]:
    """Build `out_dir/train` and `out_dir/valid` stores (LR at each of `scales`) from `params.train` / `params.valid`.

    Deterministic for given params and images; `out_dir` is replaced atomically, so a failed run leaves the
    previous store intact.
    """
    summary = {}
    with atomic_dir(out_dir) as tmp:
        for split, specs in (("train", params.train), ("valid", params.valid)):
            sources = _sources(Path(raw_dir), specs)
            if not sources:
                raise ValueError(f"prepare: no {split} images: none of {list(specs)} exists under {raw_dir}")
            (tmp / split).mkdir()
            summary[split] = _write_store(tmp / split, sources, params, tuple(scales), split, progress)
            log.info("prepare: %s store: %s", split, summary[split])
    return summary

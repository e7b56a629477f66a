"""Stage `upscale`: a trained model applied to real images of any size (tiled, bounded memory).

Memory is capped before the work: the tile's working set per pixel is measured once on a small probe, and each image
gets the largest tile that fits beside its uint8 input and output under the cap (`--max-memory`).
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from srpipe.context import DEFAULT, Context
from srpipe.data.images import IMAGE_SUFFIXES, ImageError, list_images, load_image, save_png
from srpipe.inference import (
    bytes_per_pixel,
    plan_tile,
    sr_function,
    super_resolve_uint8,
    tile_budget,
)
from srpipe.memory import format_size, memory_cap
from srpipe.models import create_model, get_card
from srpipe.runtime import for_inference, image_channels, pick_device
from srpipe.weights import load_model

log = logging.getLogger(__name__)


def collect_inputs(inputs: Sequence[Path]) -> list[Path]:
    """Files as given, folders expanded to their images; a missing path is an error naming it."""
    files: list[Path] = []
    for p in map(Path, inputs):
        if p.is_dir():
            files += list_images(p)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {[str(p) for p in inputs]}")
    return files


def output_names(files: Sequence[Path], scale: int) -> list[str]:
    """`<stem>_x<scale>.png` per input, made unique: inputs sharing a stem (x.jpg and x.png, a/x.png and b/x.png)
    are named by their path from the folder they have in common, extension included (a_x_jpg_x4.png), so no
    result overwrites or hides another; a clash that remains gets a counter.
    """
    stems = [f.stem.casefold() for f in files]  # casefold: x.png and X.png collide on macOS and Windows
    shared = {s for s, n in Counter(stems).items() if n > 1}
    names: list[str] = []
    for f, stem in zip(files, stems):
        if stem in shared:
            group = [g.resolve() for g, s in zip(files, stems) if s == stem]
            base = Path(os.path.commonpath([g.parent for g in group]))
            name = re.sub(r"[^\w-]+", "_", f.resolve().relative_to(base).as_posix()).strip("_")
        else:
            name = f.stem
        names.append(f"{name}_x{scale}.png")
    used: set[str] = set()
    for i, name in enumerate(names):
        n = 1
        while names[i].casefold() in used:
            n += 1
            names[i] = f"{name.removesuffix('.png')}_{n}.png"
        used.add(names[i].casefold())
    return names


def upscale(
    inputs: Sequence[Path],
    out_dir: Path,
    model: str,
    weights: Path | None = None,
    scale: int | None = None,
    tile: int = 0,
    overlap: int = 16,
    self_ensemble: bool = False,
    overwrite: bool = False,
    max_memory: str | int | None = None,
    precision: str = "auto",
    ctx: Context = DEFAULT,
) -> dict[str, Any]:
    """Write `<out_dir>/<name>_x<scale>.png` for every input image; existing outputs are kept unless `overwrite`.

    `tile` 0 picks the tile from the memory cap: `max_memory` (bytes or `2GB`), by default srpipe.memory's share of
    the machine's available memory; a given `tile` is used as it is. `precision` (srpipe.runtime.amp_dtype): `auto`
    runs bf16 where the device computes it natively.
    """
    dev = pick_device(ctx.device)
    if weights is not None:
        net, card = load_model(weights, model=model, scale=scale)
        scale, color = card.scale, card.color
    elif not get_card(model).learned:
        if scale is None:
            raise ValueError(f"{model} needs --scale")
        net, color = create_model(model, scale), "rgb"
    else:
        raise ValueError(f"{model} needs --weights (a file written by `srpipe train`)")
    net, amp = for_inference(net, dev, precision, image_channels(color))
    fn = sr_function(net, scale, get_card(model).input_space, color, self_ensemble, amp)
    cap = None if tile else memory_cap(max_memory)
    per_px = None
    if cap is not None:  # what a tile costs, measured once on what images give: RGB uint8
        per_px = bytes_per_pixel(fn, 3, torch.uint8, dev)
    files = list({f.resolve(): f for f in collect_inputs(inputs)}.values())  # a file named twice is done once
    targets = [Path(out_dir) / name for name in output_names(files, scale)]
    written, kept, failed, unwritten = [], [], [], []
    bar = tqdm(list(zip(files, targets)), desc=f"upscale x{scale} ({model})", unit="img", disable=not ctx.progress)
    for path, target in bar:
        if target.exists() and not overwrite:
            kept.append(str(target))
            continue
        try:
            img = load_image(path)
        except ImageError as e:
            log.error("upscale: %s", e)
            failed.append(str(path))
            continue
        gray = img.gray
        h, w = img.size
        side = tile
        if per_px is not None:
            budget = tile_budget(cap, 3 * h * w * scale**2, dev)
            side = plan_tile(per_px, budget, h, w, overlap)
            log.debug("upscale: %s: %s for tiles at %.0f B/px: %s", path, format_size(budget), per_px, side or "whole")
        sr = super_resolve_uint8(fn, img.pixels, scale, side, overlap, dev)
        del img  # the input's memory is free for the PNG encoder
        try:
            save_png(target, sr, gray=gray)
        except OSError as e:  # a full disk or a read-only folder: say which output is missing, go on with the rest
            log.error("upscale: could not write %s (%s)", target, e)
            unwritten.append(str(target))
            continue
        written.append(str(target))
    if kept:
        log.warning(
            "upscale: %d output(s) exist and were kept (use --overwrite to replace them): %s",
            len(kept),
            ", ".join(kept),
        )
    if failed or unwritten:
        problems = [f"{len(failed)} unreadable input(s): {', '.join(failed)}"] if failed else []
        problems += [f"{len(unwritten)} output(s) not written: {', '.join(unwritten)}"] if unwritten else []
        raise ImageError(f"{'; '.join(problems)} (the others were written)")
    return {"written": written, "kept": kept, "scale": scale}

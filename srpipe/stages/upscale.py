"""Stage `upscale`: a trained model applied to real images of any size (tiled, bounded memory)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from srpipe.cost import pick_device
from srpipe.data.images import IMAGE_SUFFIXES, ImageError, list_images, load_image, save_png
from srpipe.inference import for_inference, super_resolve, to_uint8
from srpipe.models import create_model, get_card
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


def upscale(
    inputs: Sequence[Path],
    out_dir: Path,
    model: str,
    weights: Path | None = None,
    scale: int | None = None,
    tile: int = 0,
    overlap: int = 16,
    self_ensemble: bool = False,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Write `<out_dir>/<name>_x<scale>.png` for every input image; existing outputs are kept unless `overwrite`."""
    dev = pick_device(device)
    if weights is not None:
        net, card = load_model(weights, model=model, scale=scale)
        scale, color = card.scale, card.color
    elif model == "bicubic":
        if scale is None:
            raise ValueError("bicubic needs --scale")
        net, color = create_model("bicubic", scale), "rgb"
    else:
        raise ValueError(f"{model} needs --weights (a file written by `srpipe train`)")
    net = for_inference(net, dev)
    amp = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if dev.type == "cuda" else None
    files = collect_inputs(inputs)
    written, kept, failed = [], [], []
    for path in tqdm(files, desc=f"upscale x{scale} ({model})", unit="img", disable=not progress):
        target = Path(out_dir) / f"{path.stem}_x{scale}.png"
        if target.exists() and not overwrite:
            kept.append(str(target))
            continue
        try:
            img = load_image(path)
        except ImageError as e:
            log.error("upscale: %s", e)
            failed.append(str(path))
            continue
        lr = torch.from_numpy(np.array(img.pixels)).permute(2, 0, 1)[None].to(dev)
        sr = super_resolve(net, lr, scale, get_card(model).input_space, color, tile, overlap, self_ensemble, amp)
        save_png(target, to_uint8(sr)[0].permute(1, 2, 0).cpu().numpy(), gray=img.gray)
        written.append(str(target))
    if kept:
        log.warning("upscale: %d output(s) exist and were kept (use --overwrite to replace them)", len(kept))
    if failed:
        raise ImageError(f"{len(failed)} unreadable input(s): {', '.join(failed)} (the others were written)")
    return {"written": written, "kept": kept, "scale": scale}

"""Running a trained network on whole images: input space, colour mode, tiling, the x8 self-ensemble and the memory
each tile may take.

One path for `upscale`, `evaluate` and validation during training, so the numbers they print agree. Every step of it
is local (bicubic taps, convolutions), so a tile with enough margin gives the whole image's values in its centre; that
is what lets `upscale` stream a large image tile by tile into a uint8 output (`super_resolve_uint8`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from srpipe.color import rgb_to_ycbcr, ycbcr_to_rgb
from srpipe.degrade import imresize
from srpipe.memory import format_size, peak_allocated_bytes, rss_bytes
from srpipe.metrics import quantize

Forward = Callable[[Tensor], Tensor]
Box = tuple[int, int, int, int]  # y0, y1, x0, x1

# Tile memory is measured on a probe of this many LR pixels a side: big enough that per-call constants are small
# beside per-pixel costs, small enough to cost a fraction of a second for the paper configs on a CPU.
PROBE_SIDE = 32
# Memory the allocation record misses (scratch of oneDNN's own allocator) and the C allocator's slack.
PROBE_MARGIN = 1.25


def self_ensemble(fn: Forward) -> Forward:
    """Geometric self-ensemble (EDSR+, Lim et al. 2017 Sec. 4.3): average over the 8 flips/transposes."""

    def run(x: Tensor) -> Tensor:
        total = None
        for k in range(8):
            t = x
            if k & 1:
                t = t.flip(-1)
            if k & 2:
                t = t.flip(-2)
            if k & 4:
                t = t.transpose(-1, -2)
            y = fn(t)
            if k & 4:  # undo in reverse order
                y = y.transpose(-1, -2)
            if k & 2:
                y = y.flip(-2)
            if k & 1:
                y = y.flip(-1)
            total = y.float() if total is None else total + y.float()
        return total / 8

    return run


def tile_boxes(h: int, w: int, tile: int, overlap: int) -> list[tuple[Box, Box]]:
    """(read, keep) boxes in input pixels: `tile`-px tiles overlapping by `overlap`, each keeping its centre (half the
    overlap is dropped on every side that is not the image border); the keeps cover the image. Tile 0, or an image
    within one tile: the whole image."""
    if tile > 0 and overlap >= tile:
        raise ValueError(f"tile overlap {overlap} must be smaller than the tile {tile}")
    if tile <= 0 or (h <= tile and w <= tile):
        return [((0, h, 0, w), (0, h, 0, w))]
    step, half = tile - overlap, overlap // 2

    def starts(n: int) -> list[int]:
        s = list(range(0, max(n - tile, 0) + 1, step))
        return [*s, n - tile] if s[-1] + tile < n else s

    boxes = []
    for y0 in starts(h):
        for x0 in starts(w):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            keep = (
                y0 + (half if y0 > 0 else 0),
                y1 - (half if y1 < h else 0),
                x0 + (half if x0 > 0 else 0),
                x1 - (half if x1 < w else 0),
            )
            boxes.append(((y0, y1, x0, x1), keep))
    return boxes


def _centre(part: Tensor, read: Box, keep: Box, s: int) -> Tensor:
    """The part of `part` (the output of the tile `read`, `s` times larger) that lies in `keep`."""
    dy, dx = keep[0] - read[0], keep[2] - read[2]
    return part[..., dy * s : (dy + keep[1] - keep[0]) * s, dx * s : (dx + keep[3] - keep[2]) * s]


def tiled(fn: Forward, tile: int, overlap: int, out_scale: int) -> Forward:
    """Run `fn` on `tile`-px input tiles overlapping by `overlap` px; each tile keeps only its centre.

    A fully convolutional net whose receptive field radius is ≤ overlap/2 gives exactly the untiled result. The output
    is one full-size float tensor; `super_resolve_uint8` streams into uint8 instead.
    """
    tile_boxes(1, 1, tile, overlap)  # a bad overlap fails now, not at the first image
    if tile <= 0:
        return fn

    def run(x: Tensor) -> Tensor:
        boxes = tile_boxes(*x.shape[-2:], tile, overlap)
        if len(boxes) == 1:
            return fn(x)
        out = None
        s = out_scale
        for read, keep in boxes:
            part = fn(x[..., read[0] : read[1], read[2] : read[3]])
            if out is None:
                out = part.new_zeros(*part.shape[:-2], x.shape[-2] * s, x.shape[-1] * s)
            out[..., keep[0] * s : keep[1] * s, keep[2] * s : keep[3] * s] = _centre(part, read, keep, s)
        return out

    return run


def sr_function(
    model: nn.Module,
    scale: int,
    input_space: str = "lr",
    color: str = "rgb",
    ensemble: bool = False,
    amp_dtype: torch.dtype | None = None,
) -> Forward:
    """SR of an N×C×h×w LR batch (uint8, or float in [0, 255], on the model's device) → float RGB, not yet clipped.

    `input_space` "bicubic" feeds MATLAB-bicubic-upsampled input (SRCNN, VDSR …); `color` "y" runs the network on
    BT.601 luma and takes chroma from bicubic upsampling, as the Y-channel papers did; `ensemble` averages the
    network over the 8 flips/transposes.
    """

    def net(t: Tensor) -> Tensor:
        amp = torch.autocast(t.device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
        with amp:
            return model(t).float()

    body = self_ensemble(net) if ensemble else net

    @torch.inference_mode()
    def run(lr: Tensor) -> Tensor:
        rgb = imresize(lr, float(scale)) if input_space == "bicubic" else lr
        x = rgb.float() / 255.0
        if color != "y":
            return body(x)
        ycc = rgb_to_ycbcr(x)
        chroma = ycc[:, 1:] if input_space == "bicubic" else imresize(ycc[:, 1:], float(scale))
        return ycbcr_to_rgb(torch.cat([body(ycc[:, :1]), chroma], dim=1))

    return run


def super_resolve(
    model: nn.Module,
    lr: Tensor,
    scale: int,
    input_space: str = "lr",
    color: str = "rgb",
    tile: int = 0,
    overlap: int = 16,
    ensemble: bool = False,
    amp_dtype: torch.dtype | None = None,
) -> Tensor:
    """SR of an N×3×h×w uint8 RGB batch (on the model's device) → N×3×sh×sw float RGB, not yet clipped; `tile` > 0
    runs `sr_function` on overlapping tiles of that many LR pixels."""
    return tiled(sr_function(model, scale, input_space, color, ensemble, amp_dtype), tile, overlap, scale)(lr)


def super_resolve_uint8(
    fn: Forward, pixels: np.ndarray, scale: int, tile: int, overlap: int, device: torch.device
) -> np.ndarray:
    """SR by `fn` (an `sr_function`) of one H×W×3 uint8 image in host memory → the sH×sW×3 uint8 image.

    Each tile is rounded to uint8 and copied into the preallocated output as soon as it is computed: memory is the two
    uint8 images plus one tile's work (on `device`), never a full-size float image.
    """
    h, w = pixels.shape[:2]
    out = np.empty((h * scale, w * scale, 3), np.uint8)
    view = torch.from_numpy(out)
    for read, keep in tile_boxes(h, w, tile, overlap):
        crop = pixels[read[0] : read[1], read[2] : read[3]].copy()  # a uint8 tile: the decoded image may be read-only
        lr = torch.from_numpy(crop).permute(2, 0, 1)[None].to(device)  # NHWC strides: already channels-last
        sr = _centre(to_uint8(fn(lr)), read, keep, scale)
        view[keep[0] * scale : keep[1] * scale, keep[2] * scale : keep[3] * scale] = sr[0].permute(1, 2, 0).cpu()
    return out


def bytes_per_pixel(
    fn: Forward, channels: int = 3, dtype: torch.dtype = torch.uint8, device: torch.device | None = None
) -> float:
    """Memory one tile's work takes per LR pixel: `fn` and the uint8 rounding, measured on a random PROBE_SIDE² input
    like the images to come (`channels`, `dtype`, `device`); PROBE_MARGIN added for what the record misses."""
    probe = (torch.rand(1, channels, PROBE_SIDE, PROBE_SIDE, device=device) * 255).to(dtype)
    return PROBE_MARGIN * peak_allocated_bytes(lambda: to_uint8(fn(probe)), probe.device) / PROBE_SIDE**2


def tile_budget(cap: int, reserved: float, device: torch.device) -> float:
    """Bytes one tile's work may take: what the memory cap leaves beside this process's memory and `reserved` bytes
    still to come (the result image); on a GPU, which holds the tile's work, 90 % of its free memory instead.

    Raises:
        MemoryError: the reserved bytes alone do not fit under the cap, so no tile size can help.
    """
    used = rss_bytes()
    if cap - used - reserved < 0:
        raise MemoryError(
            f"the result needs {format_size(reserved)} beside the {format_size(used)} in use, more than the "
            f"{format_size(cap)} memory cap: raise --max-memory"
        )
    return torch.cuda.mem_get_info(device)[0] * 0.9 if device.type == "cuda" else cap - used - reserved


def plan_tile(bytes_per_px: float, budget: float, h: int, w: int, overlap: int) -> int:
    """The tile side (LR px) whose work fits `budget` bytes for an h×w image: 0 when the whole image fits.

    Raises:
        MemoryError: not even a tile of twice the overlap fits, so tiling cannot help.
    """
    if bytes_per_px * h * w <= budget:
        return 0
    side = math.isqrt(int(max(budget, 0) / bytes_per_px))
    least = max(2 * overlap, 16)
    if side < least:
        need = format_size(bytes_per_px * least**2 - budget)
        raise MemoryError(
            f"a {w}×{h} image needs {format_size(bytes_per_px * least**2)} for {least}-px tiles but only "
            f"{format_size(max(budget, 0))} is left under the memory cap: raise --max-memory by at least {need}"
        )
    return side


def to_uint8(sr: Tensor) -> Tensor:
    """Clip and round to the uint8 a saved PNG holds."""
    return quantize(sr).to(torch.uint8)

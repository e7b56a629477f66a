"""Evaluation protocols: how the LR input is made and what is scored, one per family of test code.

srpipe's default (`rgb`) is the convention of the EDSR/RDN/RCAN tables. The Y-channel papers measured their tables
with their own MATLAB test code, which differs in ways worth hundredths to tenths of a dB; to check released
weights against those tables, `evaluate --protocol` reproduces that code's steps, named after it:

- ``rgb``: LR = MATLAB-bicubic of the uint8 RGB image, rounded to uint8 (a saved LR PNG); a Y network sees BT.601 Y
  in float with bicubic chroma; the RGB output is rounded to uint8 and scored on its float Y. A 1-channel source is
  its own Y.
- ``y-matlab``: SRCNN's demo_SR.m (the SRCNN authors' test code) and the VDSR test data: the image becomes
  ``rgb2ycbcr(uint8)`` luma, which MATLAB rounds to uint8 (a 1-channel image is used as it is); that Y is shrunk
  and (for bicubic-input networks) enlarged in float, never quantised; the network's Y is rounded to uint8 and scored
  against the rounded Y. No RGB is involved.
- ``rgb-float``: LapSRN's test_LapSRN.m / evaluate_LapSRN_dataset.m: the RGB image in double is shrunk in float (the
  LR image is never quantised), converted to YCbCr in float; the SR RGB is rounded (im2uint8) and scored on its
  float Y. A gray image is scored as 3-channel RGB (MATLAB's rgb2ycbcr needs three channels), i.e. on studio-range Y.

All three crop `scale` pixels at each border and use srpipe's SSIM (Wang et al.'s 'valid' window mean).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from srpipe.color import rgb_to_y
from srpipe.config import PROTOCOLS
from srpipe.degrade import imresize, modcrop
from srpipe.metrics import psnr, score, ssim

# Memory scoring holds per HR pixel, the float SR result included (SSIM's five float64 maps dominate): 170-187 bytes
# measured with srpipe.memory.peak_allocated_bytes for 256-1536 px images under each protocol; evaluate reserves it
# before it picks a tile. tests/test_protocols.py keeps it an upper bound.
SCORE_BYTES_PER_PX = 200
# run(lr, color): SR of an N×C×h×w LR batch (uint8, or float in [0, 255]) → float output in [0, 1] (not clipped)
Run = Callable[[Tensor, str], Tensor]


def _matlab_round(x: Tensor) -> Tensor:
    return torch.floor(x + 0.5)  # MATLAB rounds half away from zero (values here are ≥ 0)


def sr_and_score(
    protocol: str, pixels: np.ndarray, gray: bool, scale: int, run: Run, color: str, device: torch.device
) -> tuple[np.ndarray, dict[str, float | None]]:
    """(SR image as uint8 H×W×C, scores) of one H×W×3 uint8 HR image under `protocol`."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown evaluation protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    hr = np.array(modcrop(pixels, scale))
    t = torch.from_numpy(hr).permute(2, 0, 1)[None].to(device)
    if protocol == "rgb":
        from srpipe.inference import to_uint8

        lr = imresize(t, 1.0 / scale)
        sr = to_uint8(run(lr, color))[0].permute(1, 2, 0).cpu().numpy()
        return sr, score(sr, hr, scale, gray)
    if protocol == "y-matlab":
        if color != "y":
            raise ValueError("protocol y-matlab scores a Y-channel network; these weights see RGB")
        y = t[:, :1].double() if gray else _matlab_round(rgb_to_y(t.double() / 255.0) * 255.0)
        lr = imresize(y, 1.0 / scale)  # float in, float out: no quantisation of the LR image
        sr_y = _matlab_round(run(lr, "rgb").double().clamp(0, 1) * 255.0)  # one channel: no colour conversion
        scores = {
            "psnr": float(psnr(sr_y, y, scale, y_only=False)[0]),
            "ssim": float(ssim(sr_y, y, scale, y_only=False)[0]),
            "psnr_rgb": None,
        }
        return sr_y[0, 0].to(torch.uint8).cpu().numpy()[:, :, None].repeat(3, axis=2), scores
    lr = imresize(t.double(), 1.0 / scale)  # rgb-float
    sr = _matlab_round(run(lr, color).double().clamp(0, 1) * 255.0)[0].permute(1, 2, 0).to(torch.uint8).cpu().numpy()
    return sr, score(sr, hr, scale, gray=False)

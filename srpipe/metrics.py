"""PSNR and SSIM in the convention of the SR literature (the numbers in the EDSR/RDN/RCAN tables).

SR output is clipped and rounded to uint8 first (as a saved PNG would be). Scores are computed on the Y channel of
ITU-R BT.601 (Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, in float, not re-rounded), except that a 1-channel
source is its own Y (Set14 `bridge`). `crop_border = scale` pixels are removed on every side. SSIM follows Wang et al.
(TIP 2004): 11×11 Gaussian window, σ = 1.5, K1 = 0.01, K2 = 0.03, L = 255, 'valid' filtering, mean of the map.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from srpipe.color import rgb_to_y as _rgb01_to_y


def quantize(sr: Tensor) -> Tensor:
    """A float image in [0, 1] as the uint8 values a saved PNG holds (kept as float [0, 255])."""
    return torch.round(sr.clamp(0, 1) * 255)


def rgb_to_y(img: Tensor) -> Tensor:
    """N×3×H×W in [0, 255] → N×1×H×W BT.601 luma in [16, 235] (float, unrounded)."""
    return _rgb01_to_y(img / 255.0) * 255.0


def _prepare(img: Tensor, y_only: bool, gray: Tensor | bool, crop_border: int) -> Tensor:
    x = img.to(torch.float64)
    if y_only and x.shape[1] == 3:
        gray_mask = torch.as_tensor(gray, device=x.device).reshape(-1, 1, 1, 1).expand(x.shape[0], 1, 1, 1)
        x = torch.where(gray_mask, x[:, :1], rgb_to_y(x))  # a 1-channel source's value is its own Y
    if crop_border:
        x = x[..., crop_border:-crop_border, crop_border:-crop_border]
    return x


def psnr(sr: Tensor, hr: Tensor, crop_border: int, y_only: bool = True, gray: Tensor | bool = False) -> Tensor:
    """Per-image PSNR (dB) of uint8-valued N×C×H×W batches (uint8, or float in [0, 255])."""
    a, b = _prepare(sr, y_only, gray, crop_border), _prepare(hr, y_only, gray, crop_border)
    mse = (a - b).pow(2).flatten(1).mean(dim=1)
    return 10 * torch.log10(255.0**2 / mse)  # identical images give +inf, as they should


def _gaussian_1d(size: int = 11, sigma: float = 1.5) -> Tensor:
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - size // 2) ** 2) / (2 * sigma**2))
    return g / g.sum()


def ssim(sr: Tensor, hr: Tensor, crop_border: int, y_only: bool = True, gray: Tensor | bool = False) -> Tensor:
    """Per-image SSIM of uint8-valued N×C×H×W batches; channels are scored separately and averaged (RGB mode)."""
    a, b = _prepare(sr, y_only, gray, crop_border), _prepare(hr, y_only, gray, crop_border)
    n, c = a.shape[:2]
    if min(a.shape[-2:]) < 11:
        side = f"{a.shape[-1]}×{a.shape[-2]}"
        raise ValueError(f"image of {side} px after the border crop is too small for SSIM's 11×11 window")
    # The 2-D Gaussian window is separable: two 1-D 'valid' passes over the five maps at once.
    g = _gaussian_1d().to(a.device)
    maps = torch.cat([a, b, a * a, b * b, a * b], dim=1)
    k = 5 * c
    maps = F.conv2d(maps, g.view(1, 1, 11, 1).expand(k, 1, 11, 1), groups=k)
    maps = F.conv2d(maps, g.view(1, 1, 1, 11).expand(k, 1, 1, 11), groups=k)
    mu_a, mu_b, e_aa, e_bb, e_ab = maps.split(c, dim=1)
    var_a, var_b, cov = e_aa - mu_a**2, e_bb - mu_b**2, e_ab - mu_a * mu_b
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return ssim_map.reshape(n, -1).mean(dim=1)


def score(sr: np.ndarray, hr: np.ndarray, scale: int, gray: bool = False) -> dict[str, float]:
    """PSNR/SSIM on Y and PSNR on RGB of one H×W×3 uint8 SR image against its (modcropped) HR image."""
    if sr.shape != hr.shape:
        raise ValueError(f"SR image is {sr.shape}, HR image is {hr.shape}: sizes must match")
    a = torch.from_numpy(np.ascontiguousarray(sr)).permute(2, 0, 1)[None]
    b = torch.from_numpy(np.ascontiguousarray(hr)).permute(2, 0, 1)[None]
    return {
        "psnr": float(psnr(a, b, scale, gray=gray)[0]),
        "ssim": float(ssim(a, b, scale, gray=gray)[0]),
        "psnr_rgb": float(psnr(a, b, scale, y_only=False)[0]),
    }

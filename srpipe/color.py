"""ITU-R BT.601 colour conversion as MATLAB's `rgb2ycbcr` (studio range: Y in [16, 235]), for [0, 1] tensors."""

from __future__ import annotations

import torch
from torch import Tensor

# Rows: Y, Cb, Cr; columns: R, G, B (inputs in [0, 1], outputs in [0, 255] before the offsets).
_RGB2YCBCR = ((65.481, 128.553, 24.966), (-37.797, -74.203, 112.0), (112.0, -93.786, -18.214))
_OFFSET = (16.0, 128.0, 128.0)


def rgb_to_ycbcr(rgb: Tensor) -> Tensor:
    """…×3×H×W RGB in [0, 1] → YCbCr in [0, 1] (Y in [16/255, 235/255]), float, not rounded."""
    m = rgb.new_tensor(_RGB2YCBCR) / 255.0
    off = rgb.new_tensor(_OFFSET).view(3, 1, 1) / 255.0
    return torch.einsum("ij,...jhw->...ihw", m, rgb) + off


def rgb_to_y(rgb: Tensor) -> Tensor:
    """…×3×H×W RGB in [0, 1] → …×1×H×W luma in [0, 1]."""
    return rgb_to_ycbcr(rgb)[..., :1, :, :]


def ycbcr_to_rgb(ycbcr: Tensor) -> Tensor:
    """Inverse of `rgb_to_ycbcr` (no clipping)."""
    m = torch.linalg.inv(torch.tensor(_RGB2YCBCR, dtype=torch.float64) / 255.0).to(ycbcr)
    off = ycbcr.new_tensor(_OFFSET).view(3, 1, 1) / 255.0
    return torch.einsum("ij,...jhw->...ihw", m, ycbcr - off)

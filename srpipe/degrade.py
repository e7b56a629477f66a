"""MATLAB-compatible bicubic `imresize` and the "BI" degradation every SR paper since SRCNN uses.

MATLAB's `imresize(I, s, 'bicubic')` differs from PIL/OpenCV/torch bicubic in four ways that move PSNR by tenths of a
dB: the cubic kernel has a = -0.5; when shrinking, the kernel is widened by 1/s (antialiasing); sample positions are
u = x/s + 0.5(1 - 1/s) on 1-based pixel indices; borders are padded by symmetric reflection (edge pixel repeated).
It resizes one dimension at a time, the one with the smaller scale first, and on uint8 input every pass is rounded
(half away from zero) and saturated to uint8, as MATLAB's `imresizemex` returns its input's class.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

SCALES = (2, 3, 4, 8)


def _cubic(x: Tensor) -> Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB `cubic`)."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return near + far


@lru_cache(maxsize=256)
def _contributions(in_len: int, out_len: int, scale: float, antialias: bool) -> tuple[Tensor, Tensor]:
    """(indices, weights), each out_len × P: which input pixels make each output pixel, and how much (float64)."""
    kernel_width = 4.0
    if scale < 1 and antialias:
        kernel_width /= scale
    x = torch.arange(1, out_len + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]  # 1-based, may fall outside the image
    dist = u[:, None] - idx
    w = scale * _cubic(scale * dist) if (scale < 1 and antialias) else _cubic(dist)
    w = w / w.sum(dim=1, keepdim=True)
    # Symmetric padding: index sequence 1..n, n..1 repeated (MATLAB's `aux` table).
    mirror = torch.cat([torch.arange(in_len), torch.arange(in_len - 1, -1, -1)])
    idx0 = torch.remainder(idx.long() - 1, 2 * in_len)
    keep = w.abs().sum(dim=0) > 0  # drop all-zero tap columns, as MATLAB does
    return mirror[idx0][:, keep].contiguous(), w[:, keep].contiguous()


def output_size(in_len: int, scale: float) -> int:
    """MATLAB's ceil(in·s), robust to 1/s not being exact in binary (255·(1/3) must be 85, not 86)."""
    return math.ceil(round(in_len * scale, 9))


@lru_cache(maxsize=256)
def _matrix(in_len: int, out_len: int, scale: float, antialias: bool) -> Tensor:
    """The 1-D resize as a dense out_len × in_len float64 matrix (mirrored taps summed into their source pixels)."""
    idx, w = _contributions(in_len, out_len, scale, antialias)
    return torch.zeros(out_len, in_len, dtype=torch.float64).scatter_add_(1, idx, w)


def _resize_dim(x: Tensor, dim: int, out_len: int, scale: float, antialias: bool, as_uint8: bool) -> Tensor:
    # One matrix product per pass: BLAS does the taps, and memory stays O(image) rather than O(image × taps).
    m = _matrix(x.shape[dim], out_len, scale, antialias).to(device=x.device, dtype=x.dtype)
    out = torch.matmul(m, x) if dim == x.dim() - 2 else torch.matmul(x, m.T)
    if as_uint8:
        out = torch.floor(out + 0.5).clamp_(0, 255)  # MATLAB rounds half away from zero and saturates
    return out


def imresize(
    img: Tensor, scale: float | None = None, size: tuple[int, int] | None = None, antialias: bool = True
) -> Tensor:
    """Resize the last two dims of `img` (…×H×W, uint8 or float, any device) like MATLAB `imresize(…, 'bicubic')`.

    Give either `scale` (output size ceil(H·s) × ceil(W·s)) or `size` (H', W'). uint8 in, uint8 out (rounded after each
    pass, as MATLAB); float in, float out (no rounding or clipping). Computation is float64 for uint8 input (MATLAB
    computes in double) and in the input's precision otherwise.
    """
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of scale or size")
    h, w = img.shape[-2:]
    if size is None:
        scales = (float(scale), float(scale))
        size = (output_size(h, scales[0]), output_size(w, scales[1]))
    else:
        scales = (size[0] / h, size[1] / w)
    as_uint8 = img.dtype == torch.uint8
    x = img.to(torch.float64) if as_uint8 or not img.is_floating_point() else img
    order = sorted(range(2), key=lambda k: scales[k])  # stable: height first on ties, like MATLAB's sort
    for k in order:
        x = _resize_dim(x, x.dim() - 2 + k, size[k], scales[k], antialias, as_uint8)
    return x.to(torch.uint8) if as_uint8 else x


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop H×W(×C) to multiples of `scale` from the bottom/right, as the papers' MATLAB `modcrop`."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def resize(img: np.ndarray, factor: float) -> np.ndarray:
    """imresize(img, factor) of an H×W×C uint8 image, as uint8 (MATLAB's rounding and saturation)."""
    t = torch.from_numpy(np.array(img)).permute(2, 0, 1)  # a writable copy: torch.from_numpy shares memory
    return imresize(t, float(factor)).permute(1, 2, 0).contiguous().numpy()


def bicubic_lr(hr: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """The BI degradation: (modcropped HR, LR = imresize(HR, 1/s) as uint8) for an H×W×C uint8 image."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale}")
    hr = np.array(modcrop(hr, scale))
    if min(hr.shape[:2]) < scale:
        raise ValueError(f"image of {hr.shape[1]}×{hr.shape[0]} px is too small for x{scale}")
    return hr, resize(hr, 1.0 / scale)


def bicubic_up(lr: np.ndarray, scale: int) -> np.ndarray:
    """The bicubic baseline / pre-upsampled input: imresize(LR, s) of an H×W×C uint8 image, as uint8."""
    return resize(lr, scale)

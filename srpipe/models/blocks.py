"""Building blocks shared by several families (BasicSR's arch_util idea, kept SR-only)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

# Mean of the DIV2K training set, per RGB channel in [0, 1] (EDSR `common.MeanShift` uses it ×255).
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def conv(in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = True, stride: int = 1) -> nn.Conv2d:
    """A 'same'-padded convolution (odd kernels)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=bias)


class MeanShift(nn.Module):
    """Subtracts (sign=-1) or adds back (sign=+1) the dataset mean; a buffer, not a parameter (EDSR/RCAN/RDN/DRN)."""

    def __init__(self, channels: int, sign: int, mean: tuple[float, ...] = DIV2K_RGB_MEAN) -> None:
        super().__init__()
        # A Y-only model shifts by the mean of the RGB means: close to DIV2K's mean luma, and one fact to keep.
        values = mean if channels == len(mean) else (sum(mean) / len(mean),) * channels
        self.register_buffer("shift", sign * torch.tensor(values).view(1, channels, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.shift


class ResBlock(nn.Module):
    """conv-(BN)-act-conv-(BN), scaled and added back: SRResNet (BN, PReLU) and EDSR (no BN, ReLU, res_scale)."""

    def __init__(
        self,
        features: int,
        kernel_size: int = 3,
        act: Callable[[], nn.Module] = nn.ReLU,
        bn: bool = False,
        res_scale: float = 1.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv(features, features, kernel_size, bias=not bn)]
        if bn:
            layers.append(nn.BatchNorm2d(features))
        layers.append(act())
        layers.append(conv(features, features, kernel_size, bias=not bn))
        if bn:
            layers.append(nn.BatchNorm2d(features))
        self.body = nn.Sequential(*layers)
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x) * self.res_scale


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation channel attention (RCAN Sec. 3.3): pool, C→C/r→C, sigmoid gate."""

    def __init__(self, features: int, reduction: int = 16) -> None:
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(features, max(1, features // reduction), 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(max(1, features // reduction), features, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)


class RCAB(nn.Module):
    """Residual channel attention block (RCAN Fig. 4): conv-ReLU-conv-CA plus the identity; DRN reuses it."""

    def __init__(self, features: int, reduction: int = 16, kernel_size: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv(features, features, kernel_size),
            nn.ReLU(inplace=True),
            conv(features, features, kernel_size),
            ChannelAttention(features, reduction),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class Upsampler(nn.Sequential):
    """Sub-pixel upsampling (ESPCN): ×2 stages for powers of two, one ×3 stage for 3; `act` after each shuffle."""

    def __init__(self, scale: int, features: int, act: Callable[[], nn.Module] | None = None) -> None:
        if scale & (scale - 1) == 0:
            factors = [2] * int(math.log2(scale))
        elif scale == 3:
            factors = [3]
        else:
            raise ValueError(f"sub-pixel upsampling supports x2^n and x3, not x{scale}")
        layers: list[nn.Module] = []
        for r in factors:
            layers += [conv(features, features * r * r), nn.PixelShuffle(r)]
            if act is not None:
                layers.append(act())
        super().__init__(*layers)

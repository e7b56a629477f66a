"""Bicubic interpolation, the baseline row of every SR table: MATLAB `imresize(LR, s, 'bicubic')`, no parameters.

Registered like any network so evaluation and the leaderboard need no special case for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from srpipe.degrade import imresize
from srpipe.models.registry import ArchConfig, ModelCard, Recipe, SRModel, register_model


@dataclass(frozen=True)
class BicubicConfig(ArchConfig):
    pass


@register_model(
    card=ModelCard(
        name="bicubic",
        title="Cubic convolution interpolation for digital image processing",
        authors="Keys",
        venue="IEEE TASSP",
        year=1981,
        arxiv="",
        scales=(2, 3, 4, 8),
        input_space="lr",
        color="rgb",
        recipe=Recipe(iterations=0),  # nothing to train
        learned=False,
        notes="MATLAB imresize semantics: a = -0.5 cubic kernel, symmetric padding.",
    ),
    paper=BicubicConfig(),
    tiny=BicubicConfig(),
)
class Bicubic(SRModel):
    def __init__(self, scale: int, cfg: BicubicConfig) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        # The baseline rows of the SR tables are MATLAB imresize of uint8 images, which rounds after each 1-D pass;
        # resizing the float image instead reads ~0.01 dB higher on Set5 x2.
        q = torch.round(x.clamp(0, 1) * 255).to(torch.uint8)
        return imresize(q, float(self.scale)).to(x.dtype) / 255

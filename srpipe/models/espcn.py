"""ESPCN: Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural Network.

W. Shi, J. Caballero, F. Huszár, J. Totz, A. P. Aitken, R. Bishop, D. Rueckert, Z. Wang. CVPR 2016 (arXiv 1609.05158).

All layers work on the LR image; the last one outputs r²·C channels that a periodic shuffle (sub-pixel convolution,
Sec. 2.2) rearranges into the r-times larger image. Defaults (Sec. 3.2): l = 3, (f1, n1) = (5, 64), (f2, n2) = (3, 32),
f3 = 3, tanh after the first two layers (the paper prefers tanh to ReLU), no activation on the last.

The paper publishes no parameter count. Layer spec, one channel: 5·5·64+64 + 3·3·64·32+32 + 3·3·32·r²+r² =
1,664 + 18,464 + 289·r², i.e. 21,284 (x2), 22,729 (x3, the paper's main scale) and 24,752 (x4); only the last layer
grows with r. With RGB (C = 3) the first and last layers triple.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from srpipe.models.blocks import conv
from srpipe.models.registry import ArchConfig, ModelCard, Recipe, SRModel, register_model


@dataclass(frozen=True)
class ESPCNConfig(ArchConfig):
    features: tuple[int, int] = (64, 32)  # n1, n2 (Sec. 3.2)
    kernel_size: tuple[int, int, int] = (5, 3, 3)  # f1, f2, f3 (Sec. 3.2)


class ESPCN(SRModel):
    """Two tanh convolutions in LR space, then a convolution to r²·C channels and a pixel shuffle."""

    def __init__(self, scale: int, cfg: ESPCNConfig) -> None:
        super().__init__()
        (n1, n2), (f1, f2, f3) = cfg.features, cfg.kernel_size
        self.body = nn.Sequential(
            conv(cfg.channels, n1, f1),
            nn.Tanh(),
            conv(n1, n2, f2),
            nn.Tanh(),
        )
        self.upsample = nn.Sequential(conv(n2, cfg.channels * scale * scale, f3), nn.PixelShuffle(scale))

    def forward(self, x: Tensor) -> Tensor:
        return self.upsample(self.body(x))


register_model(
    card=ModelCard(
        name="espcn",
        title="Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural "
        "Network",
        authors="W. Shi, J. Caballero, F. Huszár, J. Totz, A. P. Aitken, R. Bishop, D. Rueckert, Z. Wang",
        venue="CVPR",
        year=2016,
        arxiv="1609.05158",
        scales=(2, 3, 4),
        input_space="lr",
        color="y",
        recipe=Recipe(
            loss="mse",  # Sec. 2.2: pixel-wise mean squared error
            optimizer="sgd",  # not named in the paper; its SGD-scale rates (0.01) suggest SGD
            lr=0.01,  # Sec. 3.2: initial 0.01, final 0.0001 ...
            lr_mult={"upsample.*": 0.1},  # ... and the final layer learns 10× slower, as in SRCNN
            momentum=0.9,
            # Sec. 3.2 lowers the rate "gradually" when the loss improvement falls under a threshold and stops after
            # 100 epochs without improvement; two /10 steps approximate 0.01 → 0.0001.
            schedule="multistep",
            milestones=(0.5, 0.75),
            gamma=0.1,
            batch_size=16,  # not stated in the paper
            patch_size=51,  # Sec. 3.2: 17r × 17r HR sub-images (LR 17×17), non-overlapping; x3's value here
            iterations=300_000,  # not published; a reference budget only
        ),
        notes="Y channel; one network per scale, 91 images or 50,000 ImageNet images (Sec. 3.1). The paper's LR images "
        "are Gaussian-blurred and subsampled, not bicubic. One r²·C sub-pixel layer for every r.",
    ),
    paper=ESPCNConfig(),
    tiny=ESPCNConfig(features=(16, 8)),
)(ESPCN)

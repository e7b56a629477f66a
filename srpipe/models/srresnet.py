"""SRResNet (the SRGAN generator) and BasicSR's BN-free MSRResNet.

Christian Ledig, Lucas Theis, Ferenc Huszár, Jose Caballero, Andrew Cunningham, Alejandro Acosta, Andrew Aitken,
Alykhan Tejani, Johannes Totz, Zehan Wang, Wenzhe Shi, "Photo-Realistic Single Image Super-Resolution Using a
Generative Adversarial Network", CVPR 2017, arXiv:1609.04802.

Generator, Fig. 4 (top): conv 9×9 (64) + PReLU → B = 16 residual blocks [conv 3×3 - BN - PReLU - conv 3×3 - BN, + x]
→ conv 3×3 - BN, + the head's output (long skip) → ×2 stages [conv 3×3 (256) - pixel shuffle - PReLU] → conv 9×9.
Count at ×4, RGB: 1,547,350 (≈1.55M; PReLU with one shared slope, no conv bias before a BN). The paper trains ×4;
the sub-pixel stages (blocks.Upsampler) give ×2/×4/×8 and one ×3 stage for ×3, so srpipe offers 2, 3, 4, 8.
"srresnet" is the MSE-trained network (Sec. 3.2).
Sec. 3.2 feeds LR images in [0, 1] and HR targets in [-1, 1]; srpipe keeps both in [0, 1] (the contract).

"msrresnet" is NOT the paper's model: it is BasicSR's "modified SRResNet" (basicsr/archs/srresnet_arch.py): 3×3 head,
16 BN-free blocks [conv-ReLU-conv], no long skip, LReLU 0.1, an extra 3×3 conv before the last conv, and the
bilinear-upsampled input added to the output; 1,517,571 parameters at ×4 RGB. Recipe from BasicSR's
options/train/SRResNet_SRGAN/train_MSRResNet_x4.yml.

SRGAN (the same generator trained adversarially), its discriminator and VGG19 loss network: models/srgan.py.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from srpipe.models.blocks import ResBlock, Upsampler, conv
from srpipe.models.registry import ArchConfig, ModelCard, Recipe, SRModel, register_model

_CARD = dict(
    title="Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial Network",
    authors="Ledig, Theis, Huszár, Caballero, Cunningham, Acosta, Aitken, Tejani, Totz, Wang, Shi",
    venue="CVPR",
    year=2017,
    arxiv="1609.04802",
    scales=(2, 3, 4, 8),  # paper: ×4; sub-pixel stages make ×2^n natural and ×3 one stage
    input_space="lr",
    color="rgb",
)


@dataclass(frozen=True)
class SRResNetConfig(ArchConfig):
    features: int = 64  # n64 throughout (Fig. 4)
    blocks: int = 16  # B = 16 residual blocks (Sec. 2.1, 3.2)
    kernel_size: int = 3
    outer_kernel: int = 9  # 9×9 first and last convolutions (Fig. 4)


@register_model(
    card=ModelCard(
        name="srresnet",
        **_CARD,
        recipe=Recipe(
            loss="mse",  # SRResNet is the MSE-optimised network (Sec. 3.2)
            optimizer="adam",
            lr=1e-4,
            betas=(0.9, 0.999),
            schedule="constant",
            milestones=(),
            batch_size=16,
            patch_size=96,
            iterations=1_000_000,  # 10^6 update iterations (Sec. 3.2)
        ),
        notes="Trained on 350K ImageNet images in the paper.",
    ),
    paper=SRResNetConfig(),
    tiny=SRResNetConfig(features=16, blocks=2),
)
class SRResNet(SRModel):
    def __init__(self, scale: int, cfg: SRResNetConfig) -> None:
        super().__init__()
        c, f, k = cfg.channels, cfg.features, cfg.kernel_size
        self.head = nn.Sequential(conv(c, f, cfg.outer_kernel), nn.PReLU())
        blocks = [ResBlock(f, k, act=nn.PReLU, bn=True) for _ in range(cfg.blocks)]
        self.body = nn.Sequential(*blocks, conv(f, f, k, bias=False), nn.BatchNorm2d(f))
        self.upsample = Upsampler(scale, f, act=nn.PReLU)
        self.tail = conv(f, c, cfg.outer_kernel)

    def forward(self, x: Tensor) -> Tensor:
        h = self.head(x)
        return self.tail(self.upsample(h + self.body(h)))


@dataclass(frozen=True)
class MSRResNetConfig(ArchConfig):
    features: int = 64  # BasicSR num_feat
    blocks: int = 16  # BasicSR num_block
    kernel_size: int = 3
    negative_slope: float = 0.1  # BasicSR's LeakyReLU


@register_model(
    card=ModelCard(
        name="msrresnet",
        **_CARD,
        recipe=Recipe(
            loss="l1",  # BasicSR train_MSRResNet_x4.yml
            optimizer="adam",
            lr=2e-4,
            betas=(0.9, 0.99),
            schedule="cosine",  # BasicSR: 4 cosine restarts of 250k each; srpipe runs one cosine
            milestones=(),
            min_lr=1e-7,  # eta_min
            batch_size=16,
            patch_size=128,  # gt_size
            iterations=1_000_000,
        ),
        notes="BasicSR's modified SRResNet (no BN, no long skip, bilinear global residual), not the paper's network. "
        "BasicSR also keeps an EMA (0.999) of the weights.",
    ),
    paper=MSRResNetConfig(),
    tiny=MSRResNetConfig(features=16, blocks=2),
)
class MSRResNet(SRModel):
    def __init__(self, scale: int, cfg: MSRResNetConfig) -> None:
        super().__init__()
        c, f, k = cfg.channels, cfg.features, cfg.kernel_size
        lrelu = functools.partial(nn.LeakyReLU, cfg.negative_slope, inplace=True)
        self.scale = scale
        self.head = nn.Sequential(conv(c, f, k), lrelu())
        self.body = nn.Sequential(*(ResBlock(f, k, act=nn.ReLU) for _ in range(cfg.blocks)))
        self.upsample = Upsampler(scale, f, act=lrelu)
        self.tail = nn.Sequential(conv(f, f, k), lrelu(), conv(f, c, k))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # BasicSR default_init_weights: Kaiming normal scaled by 0.1
                nn.init.kaiming_normal_(m.weight)
                m.weight.data.mul_(0.1)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return self.tail(self.upsample(self.body(self.head(x)))) + base

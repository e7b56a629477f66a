"""SRDenseNet ("All" variant): dense blocks joined by dense skip connections, deconvolution upsampling.

Tong Tong, Gen Li, Xiejie Liu, Qinquan Gao, "Image Super-Resolution Using Dense Skip Connections", ICCV 2017
(no arXiv version). There is no official code; layer facts were checked against yjn870/SRDenseNet-pytorch, the
reimplementation that reproduces the paper's Set5 ×4 PSNR most closely (31.80 vs 32.02 dB).

Figure 2(c), SRDenseNet_All, on the LR image:
  low-level conv 3×3 → 128 maps (+ReLU)
  8 dense blocks; block b sees the concatenation of the low-level maps and the outputs of blocks 1..b-1 (dense skip
  connections). In a block, 8 conv 3×3 layers each add k = 16 maps (growth rate, Sec. 3); layer 1 reads the block
  input, layer i > 1 the concatenation of layers 1..i-1 of the block; the block outputs its 8 × 16 = 128 new maps.
  bottleneck conv 1×1: (128 + 8·128 = 1152) → 256 (+ReLU)  (Sec. 3)
  two deconvolution layers 3×3, 256 → 256, stride 2 (+ReLU), ×4 in all (Sec. 3)
  reconstruction conv 3×3 → channels.
The paper evaluates ×4 only. srpipe derives the deconvolution stack from the scale (one ×2 deconvolution per factor
of 2), so x2/x4/x8 build; ×4 is the paper's network.

Parameters (Y, channels=1, ×4, biases counted): 2,659,585 = low-level 1,280 + dense blocks 1,180,672 (the first
layer of block b reads 128·b maps) + bottleneck 295,168 + deconvolutions 2 × 590,080 + reconstruction 2,305; ×2
2,069,505 and ×8 3,249,665. The ~2.0M cited for the paper cannot be rebuilt from its text: feeding each block only the
previous block's output would give 2.14M, and the 4×4 deconvolutions of the Caffe reimplementation (`up_kernel=4`)
3.58M. We keep the dense-skip layout of Fig. 2(c) and the 3×3 deconvolutions. Tiny config: 9,187 (RGB, ×8).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from srpipe.models.blocks import conv
from srpipe.models.registry import ArchConfig, ModelCard, Recipe, SRModel, register_model


@dataclass(frozen=True)
class SRDenseNetConfig(ArchConfig):
    features: int = 128  # low-level maps; = growth × layers so every dense-skip input is a multiple of a block output
    blocks: int = 8  # dense blocks (Sec. 3)
    layers: int = 8  # conv layers per dense block (Sec. 3)
    growth: int = 16  # k, maps added by each layer (Sec. 3)
    bottleneck: int = 256  # 1×1 bottleneck width, also the deconvolution width (Sec. 3)
    kernel_size: int = 3
    up_kernel: int = 3  # deconvolution kernel (yjn870); the Caffe reimplementation uses 4


class DenseBlock(nn.Module):
    """`layers` conv+ReLU layers; layer i reads the concatenation of layers < i (layer 1 the block input)."""

    def __init__(self, in_channels: int, growth: int, layers: int, kernel_size: int = 3) -> None:
        super().__init__()
        widths = [in_channels] + [growth * i for i in range(1, layers)]
        self.layers = nn.ModuleList(nn.Sequential(conv(w, growth, kernel_size), nn.ReLU(inplace=True)) for w in widths)

    def forward(self, x: Tensor) -> Tensor:
        out = self.layers[0](x)
        for layer in self.layers[1:]:
            out = torch.cat([out, layer(out)], dim=1)
        return out


class SRDenseNet(SRModel):
    def __init__(self, scale: int, cfg: SRDenseNetConfig) -> None:
        super().__init__()
        c, k, b, up_k = cfg.channels, cfg.kernel_size, cfg.bottleneck, cfg.up_kernel
        block_out = cfg.growth * cfg.layers
        self.low = nn.Sequential(conv(c, cfg.features, k), nn.ReLU(inplace=True))
        self.blocks = nn.ModuleList(
            DenseBlock(cfg.features + i * block_out, cfg.growth, cfg.layers, k) for i in range(cfg.blocks)
        )
        self.bottleneck = nn.Sequential(conv(cfg.features + cfg.blocks * block_out, b, 1), nn.ReLU(inplace=True))
        ups: list[nn.Module] = []
        for _ in range(int(math.log2(scale))):
            # padding/output_padding give exactly 2H for odd and even kernels
            ups += [nn.ConvTranspose2d(b, b, up_k, 2, padding=(up_k - 1) // 2, output_padding=up_k % 2)]
            ups += [nn.ReLU(inplace=True)]
        self.upsample = nn.Sequential(*ups)
        self.reconstruction = conv(b, c, k)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")  # MSRA init, as in both reimplementations
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        skips = [self.low(x)]
        for block in self.blocks:
            skips.append(block(torch.cat(skips, dim=1)))
        return self.reconstruction(self.upsample(self.bottleneck(torch.cat(skips, dim=1))))


register_model(
    card=ModelCard(
        name="srdensenet",
        title="Image Super-Resolution Using Dense Skip Connections",
        authors="Tong, Li, Liu, Gao",
        venue="ICCV",
        year=2017,
        arxiv="",  # not on arXiv
        scales=(2, 4, 8),  # paper: ×4 only; one ×2 deconvolution per factor of two
        input_space="lr",
        color="y",
        recipe=Recipe(
            loss="mse",  # paper: MSE between the output and the HR image
            optimizer="adam",
            lr=1e-4,  # paper (experiments, training details)
            # Unconfirmed: the decay and budget follow yjn870's reproduction (60 epochs over 50K images, ×0.1 at 80%).
            schedule="multistep",
            milestones=(0.8,),
            gamma=0.1,
            batch_size=32,  # paper (training details); yjn870's default too
            patch_size=100,  # HR 100×100 sub-images (LR 25×25 at ×4), paper training details
            iterations=94_000,  # 60 epochs × 50,000 ImageNet sub-images / 32 ≈ 93,750
        ),
        notes="Y channel, ×4 in the paper; x2/x8 use one ×2 deconvolution per factor of two. See the docstring count.",
    ),
    paper=SRDenseNetConfig(),
    tiny=SRDenseNetConfig(features=8, blocks=2, layers=2, growth=4, bottleneck=16),
)(SRDenseNet)

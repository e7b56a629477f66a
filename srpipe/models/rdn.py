"""RDN: Residual Dense Network for Image Super-Resolution.

Yulun Zhang, Yapeng Tian, Yu Kong, Bineng Zhong, Yun Fu. CVPR 2018. arXiv:1802.08797.

The network of Fig. 2: two shallow-feature convs (SFENet: F_-1, then F_0), D residual dense blocks, dense feature
fusion (global feature fusion: a 1x1 and a 3x3 conv over the concatenation of all D block outputs, then global
residual learning with F_-1), the up-sampling net (sub-pixel convs) and a reconstruction conv. A residual dense block
(Fig. 3) has C densely connected conv-ReLU layers of G channels each (contiguous memory), a 1x1 local feature fusion
back to G0 channels and local residual learning.

Defaults: D = 16 blocks, C = 8 layers, G = 64 growth (the official RDN_TrainCode TrainRDN_scripts.sh and
EDSR-PyTorch's RDN config "B"), G0 = 64 features, 3x3 kernels except the 1x1 fusions (the paper's implementation
details): 22.1M parameters at x2 (srpipe gets the same). The official Torch code subtracts the DIV2K mean before the
network and adds it back after (opts.lua `-subMean true`, model/init.lua): srpipe's MeanShift does the same;
EDSR-PyTorch's port leaves it out.
Training (the paper's settings): L1 loss, 16 LR RGB patches of 32x32, Adam beta = (0.9, 0.999), eps = 1e-8, lr 1e-4
halved every 200 epochs. An epoch is 1000 iterations (official opts.lua: `-testEvery 1e3`, `-halfLife 200e3`
iterations = 200 epochs). The total is not in the paper; the official x4 script runs `-nEpochs 1000`, i.e. 1e6
iterations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from srpipe.models.blocks import MeanShift, Upsampler, conv
from srpipe.models.registry import ArchConfig, ModelCard, Recipe, SRModel, register_model


@dataclass(frozen=True)
class RDNConfig(ArchConfig):
    features: int = 64  # G0: shallow features, block inputs/outputs, global fusion
    blocks: int = 16  # D residual dense blocks
    layers: int = 8  # C conv layers per block
    growth: int = 64  # G: channels each dense layer adds
    kernel_size: int = 3


class ResidualDenseBlock(nn.Module):
    """C dense conv-ReLU layers, 1x1 local feature fusion, local residual (Fig. 3)."""

    def __init__(self, features: int, growth: int, layers: int, kernel_size: int) -> None:
        super().__init__()
        self.dense = nn.ModuleList(
            nn.Sequential(conv(features + i * growth, growth, kernel_size), nn.ReLU(inplace=True))
            for i in range(layers)
        )
        self.fusion = conv(features + layers * growth, features, 1)

    def forward(self, x: Tensor) -> Tensor:
        states = [x]
        for layer in self.dense:
            states.append(layer(torch.cat(states, dim=1)))
        return x + self.fusion(torch.cat(states, dim=1))


@register_model(
    card=ModelCard(
        name="rdn",
        title="Residual Dense Network for Image Super-Resolution",
        authors="Zhang et al.",
        venue="CVPR",
        year=2018,
        arxiv="1802.08797",
        scales=(2, 3, 4),
        input_space="lr",
        color="rgb",
        # The paper's settings; epochs → iterations and the total from the official Torch code (see docstring).
        recipe=Recipe(
            loss="l1",
            optimizer="adam",
            lr=1e-4,
            betas=(0.9, 0.999),  # eps 1e-8 = torch's Adam default
            schedule="multistep",
            milestones=(0.2, 0.4, 0.6, 0.8),  # halved every 200 epochs (2e5 iterations) of 1000
            gamma=0.5,
            batch_size=16,
            lr_patch=32,  # 32x32 LR patches (Sec. 5.1)
            iterations=1_000_000,  # 1000 epochs x 1000 iterations (official x4 script)
            init_scale=2,  # the official x3/x4 scripts start from the trained x2 model
        ),
        notes=(
            "Paper patches are 32x32 LR; the official scripts later used 48x48 at x2 and trained x3/x4 from the x2 "
            "model. Mean shift as in the official Torch code."
        ),
    ),
    paper=RDNConfig(),
    tiny=RDNConfig(features=16, blocks=2, layers=2, growth=8),
)
class RDN(SRModel):
    """SFENet → RDB × D → global fusion (1x1, 3x3) + F_-1 → sub-pixel up-sampling → reconstruction conv."""

    def __init__(self, scale: int, cfg: RDNConfig) -> None:
        super().__init__()
        c, g0, k = cfg.channels, cfg.features, cfg.kernel_size
        self.sub_mean = MeanShift(c, sign=-1)
        self.sfe1 = conv(c, g0, k)
        self.sfe2 = conv(g0, g0, k)
        self.blocks = nn.ModuleList(ResidualDenseBlock(g0, cfg.growth, cfg.layers, k) for _ in range(cfg.blocks))
        self.global_fusion = nn.Sequential(conv(cfg.blocks * g0, g0, 1), conv(g0, g0, k))
        self.tail = nn.Sequential(Upsampler(scale, g0), conv(g0, c, k))
        self.add_mean = MeanShift(c, sign=1)

    def forward(self, x: Tensor) -> Tensor:
        shallow = self.sfe1(self.sub_mean(x))  # F_-1, kept for global residual learning
        h = self.sfe2(shallow)  # F_0
        outputs = []
        for block in self.blocks:
            h = block(h)
            outputs.append(h)
        h = shallow + self.global_fusion(torch.cat(outputs, dim=1))
        return self.add_mean(self.tail(h))

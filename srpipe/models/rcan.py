"""RCAN: Image Super-Resolution Using Very Deep Residual Channel Attention Networks.

Yulun Zhang, Kunpeng Li, Kai Li, Lichen Wang, Bineng Zhong, Yun Fu. ECCV 2018. arXiv:1807.02758.

Residual in residual (Fig. 2, Sec. 3.2): subtract the DIV2K mean, a head conv, G residual groups, a body conv and the
long skip connection, sub-pixel upsampling, a tail conv, add the mean back. Each residual group (Fig. 2) is B residual
channel attention blocks (RCAB, Fig. 4: conv-ReLU-conv, channel attention with reduction r, identity) followed by a
group conv and the short skip connection.

Defaults (implementation details, Sec. 3): G = 10 groups, B = 20 RCABs, C = 64 features, reduction r = 16, 3x3
kernels: 15.4M parameters at x2 and 15.6M at x4 (srpipe gets the same). Training (Sec. 4.1): L1 loss, 16 LR RGB
patches of 48x48, Adam beta = (0.9, 0.999), eps = 1e-8, lr 1e-4 halved every 2e5 iterations. The paper gives no total;
the official RCAN_TrainCode option.py runs 1000 epochs of 1000 iterations (`--epochs 1000 --test_every 1000
--lr_decay 200`), and its scripts train x3/x4/x8 from the x2 model (`--pre_train RCAN_BIX2.pt`).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from srpipe.models.blocks import RCAB, MeanShift, Upsampler, conv
from srpipe.models.registry import ArchConfig, ModelCard, Recipe, SRModel, register_model


@dataclass(frozen=True)
class RCANConfig(ArchConfig):
    features: int = 64  # C
    groups: int = 10  # G residual groups
    blocks: int = 20  # B RCABs per group
    reduction: int = 16  # channel attention reduction r
    kernel_size: int = 3


class ResidualGroup(nn.Module):
    """B RCABs and a conv, wrapped by the short skip connection (Fig. 2)."""

    def __init__(self, features: int, blocks: int, reduction: int, kernel_size: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *(RCAB(features, reduction, kernel_size) for _ in range(blocks)),
            conv(features, features, kernel_size),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


@register_model(
    card=ModelCard(
        name="rcan",
        title="Image Super-Resolution Using Very Deep Residual Channel Attention Networks",
        authors="Zhang et al.",
        venue="ECCV",
        year=2018,
        arxiv="1807.02758",
        scales=(2, 3, 4, 8),  # the paper reports x8 too (Table 3)
        input_space="lr",
        color="rgb",
        # Sec. 4.1; total iterations and the x2 initialisation from the official RCAN_TrainCode (see docstring).
        recipe=Recipe(
            loss="l1",
            optimizer="adam",
            lr=1e-4,
            betas=(0.9, 0.999),  # eps 1e-8 = torch's Adam default
            schedule="multistep",
            milestones=(0.2, 0.4, 0.6, 0.8),  # halved every 2e5 of 1e6 iterations
            gamma=0.5,
            batch_size=16,
            lr_patch=48,  # 48x48 LR patches (Sec. 4.1)
            iterations=1_000_000,  # official option.py: 1000 epochs x 1000 iterations
            init_scale=2,  # TrainRCAN_scripts.sh: x3/x4/x8 run with --pre_train ../experiment/model/RCAN_BIX2.pt
        ),
        notes=(
            "x3/x4/x8 are fine-tuned from the trained x2 model in the official scripts. Paper patches are 48x48 LR "
            "at every scale. Mean shift uses the DIV2K RGB mean."
        ),
    ),
    paper=RCANConfig(),
    tiny=RCANConfig(features=16, groups=2, blocks=2, reduction=4),
)
class RCAN(SRModel):
    """Mean shift → head → [ResidualGroup × G → conv] + long skip → sub-pixel upsampler → tail → add mean."""

    def __init__(self, scale: int, cfg: RCANConfig) -> None:
        super().__init__()
        c, f, k = cfg.channels, cfg.features, cfg.kernel_size
        self.sub_mean = MeanShift(c, sign=-1)
        self.head = conv(c, f, k)
        self.body = nn.Sequential(
            *(ResidualGroup(f, cfg.blocks, cfg.reduction, k) for _ in range(cfg.groups)),
            conv(f, f, k),
        )
        self.tail = nn.Sequential(Upsampler(scale, f), conv(f, c, k))
        self.add_mean = MeanShift(c, sign=1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.head(self.sub_mean(x))
        x = x + self.body(x)
        return self.add_mean(self.tail(x))

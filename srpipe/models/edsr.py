"""EDSR: Enhanced Deep Residual Networks for Single Image Super-Resolution.

Bee Lim, Sanghyun Son, Heewon Kim, Seungjun Nah, Kyoung Mu Lee. CVPR Workshops (NTIRE) 2017. arXiv:1707.02921.

The network of Fig. 3: subtract the DIV2K mean, a head conv, B residual blocks without batch normalization (Fig. 2:
conv-ReLU-conv, the residual scaled by `res_scale`), a body conv closing the long skip, sub-pixel
upsampling (one x2 shuffle per factor of 2, one x3 shuffle for x3), a tail conv, add the mean back.

Defaults:
- `edsr` (Sec. 3.2, Table 1): B = 32 blocks, F = 256 features, residual scaling 0.1 (Sec. 3.2: a wide network is
  unstable to train without it). 40.7M parameters at x2, 43.1M at x4 (EDSR-PyTorch README; srpipe gets the same).
- `edsr_baseline` (Table 1 "baseline"): B = 16, F = 64, no residual scaling: 1.37M at x2, 1.52M at x4.
Training (Sec. 4.2): L1 loss, 48x48 LR RGB patches, batch 16, Adam beta = (0.9, 0.999), eps = 1e-8, lr 1e-4 halved
every 2e5 updates; the x3 and x4 models start from the trained x2 model. The paper gives no total; EDSR-PyTorch's
defaults run 300 epochs of 1000 updates (`--epochs 300 --test_every 1000`) with the halving at epoch 200.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from srpipe.models.blocks import MeanShift, ResBlock, Upsampler, conv
from srpipe.models.registry import ArchConfig, ModelCard, Recipe, SRModel, register_model


@dataclass(frozen=True)
class EDSRConfig(ArchConfig):
    features: int = 256  # F (Sec. 3.2)
    blocks: int = 32  # B residual blocks
    res_scale: float = 0.1  # residual scaling (Sec. 3.2); the baseline needs none
    kernel_size: int = 3


# Sec. 4.2.
RECIPE = Recipe(
    loss="l1",
    optimizer="adam",
    lr=1e-4,
    betas=(0.9, 0.999),  # eps 1e-8 = torch's Adam default
    schedule="multistep",
    milestones=(200_000 / 300_000,),  # halved every 2e5 updates: once within 3e5
    gamma=0.5,
    batch_size=16,
    lr_patch=48,  # 48x48 LR patches at every scale (Sec. 4.1)
    iterations=300_000,  # not in the paper: EDSR-PyTorch's 300 epochs x 1000 updates
    init_scale=2,  # Sec. 4.2: x3/x4 start from the trained x2 model (EDSR-PyTorch demo.sh: --pre_train of the x2)
)
NOTES = (
    "x3/x4 are initialised from the trained x2 model in the paper (Sec. 4.2). Paper patches are 48x48 LR "
    "(HR 96/144/192 at x2/x3/x4). Mean shift uses the DIV2K RGB mean."
)
TITLE = "Enhanced Deep Residual Networks for Single Image Super-Resolution"


def _card(name: str) -> ModelCard:
    return ModelCard(
        name=name,
        title=TITLE,
        authors="Lim et al.",
        venue="CVPRW",
        year=2017,
        arxiv="1707.02921",
        scales=(2, 3, 4),
        input_space="lr",
        color="rgb",
        recipe=RECIPE,
        notes=NOTES,
    )


@register_model(card=_card("edsr"), paper=EDSRConfig(), tiny=EDSRConfig(features=16, blocks=2))
@register_model(
    card=_card("edsr_baseline"),
    paper=EDSRConfig(features=64, blocks=16, res_scale=1.0),
    tiny=EDSRConfig(features=16, blocks=2, res_scale=1.0),
)
class EDSR(SRModel):
    """Mean shift → head → [ResBlock × B → conv] + long skip → sub-pixel upsampler → tail → add mean."""

    def __init__(self, scale: int, cfg: EDSRConfig) -> None:
        super().__init__()
        c, f, k = cfg.channels, cfg.features, cfg.kernel_size
        self.sub_mean = MeanShift(c, sign=-1)
        self.head = conv(c, f, k)
        self.body = nn.Sequential(*(ResBlock(f, k, res_scale=cfg.res_scale) for _ in range(cfg.blocks)), conv(f, f, k))
        self.tail = nn.Sequential(Upsampler(scale, f), conv(f, c, k))
        self.add_mean = MeanShift(c, sign=1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.head(self.sub_mean(x))
        x = x + self.body(x)
        return self.add_mean(self.tail(x))

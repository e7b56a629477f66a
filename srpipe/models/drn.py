"""DRN: Closed-loop Matters: Dual Regression Networks for Single Image Super-Resolution.

Yong Guo, Jian Chen, Jingdong Wang, Qi Chen, Jiezhang Cao, Zeshuai Deng, Yanwu Xu, Mingkui Tan. CVPR 2020.
arXiv:2003.07018.

Primal network (Fig. 3, a U-Net): the LR input is bicubic-upsampled to HR size inside the model (F.interpolate, as the
official model/drn.py does), the DIV2K mean is subtracted, a head conv, then n = log2(scale) down-blocks (stride-2 conv,
LeakyReLU 0.2, conv; no biases), each doubling the channels. Up the U: n stages of RCABs, a sub-pixel x2 upsampler and a
1x1 conv, whose output is concatenated with the down-path features of the same size; a tail conv after the bottom and
after every stage turns the features into an image at each scale 2^k, k = 0..n. Dual networks (Fig. 3, red): one per
x2 step, stride-2 conv, LeakyReLU, conv (no biases), mapping the SR image at scale 2^(k+1) back to scale 2^k.

Defaults (official utility.init_model): DRN-S is n_feats 16 at x4 / 8 at x8, 30 RCABs per stage; DRN-L is n_feats 20 at
x4 / 10 at x8, 40 / 36 RCABs. n_feats is the channel count at HR size and doubles at each x2 step down, so both scales
have n_feats * scale channels at LR size: srpipe's `features` is that scale-free number (64 for DRN-S, 80 for DRN-L).
CA reduction 16. Primal counts: DRN-S 4.80M at x4 / 5.40M at x8, DRN-L 9.83M / 10.00M = the README's 4.8/5.4/9.8/10.0M,
which count the primal network only (official model/__init__.py); the dual models add 864 (DRN-S x4) to 1,080
(DRN-L x4) parameters per x2 step. DRN publishes x4 and x8 only (x2 has no template), so scales are (4, 8).

Training (official option.py / trainer.py; the loss is the paper's Eq. 1 with lambda = 0.1): L1 on every primal output
plus 0.1 x L1 on every dual output, Adam (0.9, 0.999), eps 1e-8, lr 1e-4 cosine-annealed to 1e-7, batch 32, HR patch
384, 1000 epochs of 1000 iterations (dataset length = test_every x batch_size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srpipe.models.blocks import RCAB, MeanShift, Upsampler, conv
from srpipe.models.registry import ArchConfig, ModelCard, Recipe, SRModel, register_model


@dataclass(frozen=True)
class DRNConfig(ArchConfig):
    features: int = 64  # channels at LR size = official n_feats x scale (DRN-S: 16 x 4 = 8 x 8)
    blocks: int = 30  # RCABs per up stage
    blocks_x8: int | None = None  # RCABs per up stage at x8 when it differs (DRN-L: 36); None = `blocks`
    reduction: int = 16  # channel attention reduction
    negative_slope: float = 0.2  # LeakyReLU of down-blocks and dual models (official option.py `negval`)
    kernel_size: int = 3


def down_block(cin: int, mid: int, cout: int, slope: float, kernel_size: int) -> nn.Sequential:
    """Halve the size: stride-2 conv, LeakyReLU, conv, without biases (official common.DownBlock for a x2 step)."""
    return nn.Sequential(
        conv(cin, mid, kernel_size, bias=False, stride=2),
        nn.LeakyReLU(slope, inplace=True),
        conv(mid, cout, kernel_size, bias=False),
    )


def _card(name: str, notes: str) -> ModelCard:
    return ModelCard(
        name=name,
        title="Closed-loop Matters: Dual Regression Networks for Single Image Super-Resolution",
        authors="Guo et al.",
        venue="CVPR",
        year=2020,
        arxiv="2003.07018",
        scales=(4, 8),
        input_space="lr",
        color="rgb",
        # Official option.py / utility.py / trainer.py (see docstring).
        recipe=Recipe(
            loss="drn",
            optimizer="adam",
            lr=1e-4,
            betas=(0.9, 0.999),  # eps 1e-8 = torch's Adam default
            schedule="cosine",
            milestones=(),
            min_lr=1e-7,  # cosine annealing floor (eta_min)
            batch_size=32,
            patch_size=384,  # official "output patch size": LR 96x96 at x4, 48x48 at x8
            iterations=1_000_000,  # 1000 epochs x 1000 iterations (test_every)
            loss_options={"dual_weight": 0.1},  # lambda (Eq. 1; option.py --dual_weight)
        ),
        notes=notes,
    )


@register_model(
    card=_card("drn_l", "DRN-L: n_feats 20 (x4) / 10 (x8), 40 (x4) / 36 (x8) RCABs; DF2K; cosine lr floor 1e-7."),
    paper=DRNConfig(features=80, blocks=40, blocks_x8=36),
    tiny=DRNConfig(features=16, blocks=3, blocks_x8=2, reduction=4),
)
@register_model(
    card=_card("drn_s", "DRN-S: n_feats 16 (x4) / 8 (x8), 30 RCABs; trained on DF2K; cosine lr floor 1e-7."),
    paper=DRNConfig(),
    tiny=DRNConfig(features=16, blocks=2, reduction=4),
)
class DRN(SRModel):
    """Primal U-Net with an image output at every 2^k scale, plus one dual x2-downsampling model per step.

    ``forward_train(x)`` returns, with n = log2(scale) and x the LR input:

    - ``"levels"``: n + 1 primal outputs, coarse to fine; ``levels[k]`` is at scale 2^k (``levels[0]`` has the LR
      input's size, ``levels[-1]`` is ``"sr"``). Its target is the HR image downscaled by 2^(n-k): the LR input itself
      for k = 0, the HR image for k = n (the official trainer supervises every level, including k = 0).
    - ``"dual"``: n dual outputs; ``dual[k]`` is dual model k applied to ``levels[k + 1]``, so it has the size of
      ``levels[k]`` and the same target (``dual[0]`` is compared with the LR input).

    The loss: sum_k L1(levels[k], t_k) + dual_weight * sum_k L1(dual[k], t_k), with t_k the target above.
    """

    def __init__(self, scale: int, cfg: DRNConfig) -> None:
        super().__init__()
        c, k, slope, n = cfg.channels, cfg.kernel_size, cfg.negative_slope, int(math.log2(scale))
        if cfg.features % scale:
            raise ValueError(f"DRN features ({cfg.features}) must be a multiple of the scale ({scale})")
        f = cfg.features // scale  # channels at HR size (official n_feats)
        blocks = cfg.blocks_x8 if scale == 8 and cfg.blocks_x8 is not None else cfg.blocks
        self.scale = scale
        self.sub_mean = MeanShift(c, sign=-1)
        self.head = conv(c, f, k)
        # Down path: down[i] takes f*2^i channels at size HR/2^i to f*2^(i+1) channels at half the size.
        self.down = nn.ModuleList(down_block(f * 2**i, f * 2**i, f * 2 ** (i + 1), slope, k) for i in range(n))
        # Up path: width[j] = channels at scale 2^j; the bottom has f*2^n, every concatenation restores f*2^(n-j+1).
        width = [f * 2**n] + [f * 2 ** (n - j + 1) for j in range(1, n + 1)]
        self.up = nn.ModuleList(
            nn.Sequential(
                *(RCAB(width[j], cfg.reduction, k) for _ in range(blocks)),
                Upsampler(2, width[j]),
                conv(width[j], f * 2 ** (n - j - 1), 1),  # half of width[j + 1]; the skip brings the other half
            )
            for j in range(n)
        )
        self.tail = nn.ModuleList(conv(width[j], c, k) for j in range(n + 1))
        self.add_mean = MeanShift(c, sign=1)
        self.dual = nn.ModuleList(down_block(c, f, c, slope, k) for _ in range(n))

    def primal(self, x: Tensor) -> list[Tensor]:
        """The SR images at scales 1, 2, 4, ..., scale (coarse to fine)."""
        x = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        h = self.head(self.sub_mean(x))
        skips = []
        for down in self.down:
            skips.append(h)
            h = down(h)
        levels = [self.add_mean(self.tail[0](h))]
        for up, tail, skip in zip(self.up, self.tail[1:], reversed(skips), strict=True):
            h = torch.cat([up(h), skip], dim=1)
            levels.append(self.add_mean(tail(h)))
        return levels

    def forward(self, x: Tensor) -> Tensor:
        return self.primal(x)[-1]

    def forward_train(self, x: Tensor) -> dict[str, Any]:
        levels = self.primal(x)
        dual = [model(level) for model, level in zip(self.dual, levels[1:], strict=True)]
        return {"sr": levels[-1], "levels": levels, "dual": dual}

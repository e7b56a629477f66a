"""DRRN: Image Super-Resolution via Deep Recursive Residual Network.

Y. Tai, J. Yang, X. Liu. CVPR 2017 (no arXiv version; CVF open access, code: github.com/tyshiwo/DRRN_CVPR17).

B recursive blocks on the bicubic-upsampled image. A block starts with one conv (H0), then runs U residual units
whose two 3×3 convs are SHARED by all U units of the block; every unit adds back the block's entry H0 (multi-path
local residual learning, H_u = H0 + F(H_{u-1}), Sec. 3.2). Every conv is pre-activated; one last conv reconstructs
the residual, added to the input (global residual learning). Depth d = (1 + 2U)·B + 1 (Sec. 3.3). Defaults: DRRN
B1U25 with 128 filters (52 layers). One channel: 1,280 + 2·147,584 + 1,153 = 297,601 (297,216 weights: "297K").

Normalisation: the paper's units are BN-ReLU-conv, and the authors' Caffe model (DRRN_B1U25_52C128_train.prototxt)
gives every unit its OWN BatchNorm + Scale layers while only the convs are shared. Those affine parameters (2·128 for
each of 51 norms, 2 for the input's) are not in the published 297K, which counts the convs only: with them 310,659.
The paper config therefore runs ReLU-conv pre-activation without BN (`bn=False`, as the public PyTorch ports do; BN
also hurts SR accuracy and ties eval output to batch statistics). `bn=True` builds the authors' layout exactly.
Init: MSRA (He), biases 0, as in the prototxt.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from srpipe.models.blocks import conv
from srpipe.models.registry import ArchConfig, ModelCard, Recipe, SRModel, register_model


@dataclass(frozen=True)
class DRRNConfig(ArchConfig):
    features: int = 128  # DRRN_B1U25_52C128: 128 filters
    blocks: int = 1  # B recursive blocks (B1U25)
    units: int = 25  # U residual units per block, sharing one pair of convs
    bn: bool = False  # True: the authors' per-unit BatchNorm+Scale (see module docstring)


def _norm(channels: int, bn: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if bn else nn.Identity()


class RecursiveBlock(nn.Module):
    """Entry conv H0, then U units H_u = H0 + conv_b(act(conv_a(act(H_{u-1})))) with conv_a, conv_b shared."""

    def __init__(self, in_channels: int, features: int, units: int, bn: bool) -> None:
        super().__init__()
        self.entry = nn.Sequential(_norm(in_channels, bn), nn.ReLU(), conv(in_channels, features))
        self.conv_a, self.conv_b = conv(features, features), conv(features, features)
        self.norms = nn.ModuleList(_norm(features, bn) for _ in range(2 * units))  # per unit, never shared

    def forward(self, x: Tensor) -> Tensor:
        h0 = h = self.entry(x)
        for norm_a, norm_b in zip(self.norms[0::2], self.norms[1::2]):
            h = h0 + self.conv_b(torch.relu(norm_b(self.conv_a(torch.relu(norm_a(h))))))
        return h


class DRRN(SRModel):
    """B recursive blocks → pre-activated reconstruction conv → + input."""

    def __init__(self, scale: int, cfg: DRRNConfig) -> None:
        super().__init__()
        f, c = cfg.features, cfg.channels
        self.body = nn.Sequential(
            *(RecursiveBlock(c if b == 0 else f, f, cfg.units, cfg.bn) for b in range(cfg.blocks))
        )
        self.tail = nn.Sequential(_norm(f, cfg.bn), nn.ReLU(), conv(f, c))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.tail(self.body(x))


register_model(
    card=ModelCard(
        name="drrn",
        title="Image Super-Resolution via Deep Recursive Residual Network",
        authors="Y. Tai, J. Yang, X. Liu",
        venue="CVPR",
        year=2017,
        arxiv="",  # none; the paper is on CVF open access
        scales=(2, 3, 4),
        input_space="bicubic",
        color="y",
        recipe=Recipe(
            loss="mse",  # Euclidean loss on input + residual (DRRN_B1U9_20C128_train.prototxt: EuclideanLoss) ...
            loss_options={"reduction": "euclidean"},  # ... 1/(2N)·Σ‖ŷ−y‖², the scale the solver's lr and θ are for
            optimizer="sgd",  # official solver: base_lr 0.1, momentum 0.9, weight_decay 1e-4
            lr=0.1,
            # Train prototxt: every convolution's bias has lr_mult 0.1 (weights 1); the BatchNorm Scale layers keep
            # Caffe's default 1, so the globs name the convolutions (bn=True adds BN biases that must not match).
            lr_mult={"*entry.2.bias": 0.1, "*conv_a.bias": 0.1, "*conv_b.bias": 0.1, "tail.2.bias": 0.1},
            momentum=0.9,
            weight_decay=1e-4,
            schedule="multistep",  # halved every 10 epochs (solver: step, gamma 0.5, stepsize 65,360 = 10 × 6,536)
            milestones=(0.2, 0.4, 0.6, 0.8),
            gamma=0.5,
            # Solver clip_gradients 0.01, divided by the current lr (the README's patch to ClipGradients). Caffe
            # scales all gradients together so their global L2 norm is at most that threshold.
            grad_clip=0.01,
            clip="norm_by_lr",
            batch_size=128,  # train prototxt
            patch_size=31,  # generate_trainingset_x234.m: 31×31, stride 21, x2/x3/x4 mixed, 291 images ×8 augmented
            # One epoch = 6,536 iterations (the solver's test/snapshot interval). The total is not published (the
            # solver's max_iter is a 2M placeholder); 50 epochs is a reference budget with 4 halvings.
            iterations=50 * 6_536,
        ),
        notes="One network for x2/x3/x4 (scale-mixed training set). BN-free pre-activation by default: see the "
        "module docstring; bn=True for the authors' per-unit BatchNorm.",
    ),
    paper=DRRNConfig(),
    tiny=DRRNConfig(features=16, units=2),
)(DRRN)

"""DRCN: Deeply-Recursive Convolutional Network for Image Super-Resolution.

J. Kim, J. K. Lee, K. M. Lee. CVPR 2016 (arXiv 1511.04491).

Embedding net (two 3×3 conv-ReLU) → inference net: ONE 3×3 conv-ReLU applied D times with shared weights →
reconstruction net (conv-ReLU, conv), shared and applied to every recursion's hidden state H_d. Each prediction adds
the interpolated input back (skip connection), and the output is a learned weighted average of the D predictions,
ŷ = Σ_d w_d·ŷ_d (Sec. 3.2). Defaults (Sec. 4, training setup): 256 filters of 3×3 in every layer, D = 16
recursions (the longest path passes 20 conv layers, receptive field 41×41). One channel: embedding 2,560 + 590,080,
inference 590,080, reconstruction 590,080 + 2,305, plus the 16 weights = 1,775,121 (1,774,080 without biases:
the "1.77M" usually cited).

The reconstruction net's last conv has no ReLU: it outputs a signed residual that the skip adds to the input.
Init (Sec. 4, as recalled, not re-read here): He for non-recursive layers; the recursive conv starts as the identity
(zero except each unit's self-connection); biases zero. The combination weights start at 1/D. Training supervises
every recursion (recursive supervision, Sec. 3.3): `forward_train` returns the D predictions for the "drcn" loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from srpipe.models.blocks import conv
from srpipe.models.registry import ArchConfig, ModelCard, Recipe, SRModel, register_model


@dataclass(frozen=True)
class DRCNConfig(ArchConfig):
    features: int = 256  # Sec. 4: 256 filters everywhere
    recursions: int = 16  # D, Sec. 4
    kernel_size: int = 3


class DRCN(SRModel):
    """Embedding → D shared recursions → shared reconstruction of each H_d (+ input) → learned weighted average."""

    def __init__(self, scale: int, cfg: DRCNConfig) -> None:
        super().__init__()
        f, k, c = cfg.features, cfg.kernel_size, cfg.channels
        self.recursions = cfg.recursions
        self.embed = nn.Sequential(conv(c, f, k), nn.ReLU(inplace=True), conv(f, f, k), nn.ReLU(inplace=True))
        self.recursive = conv(f, f, k)  # the one shared layer of the inference net
        self.reconstruct = nn.Sequential(conv(f, f, k), nn.ReLU(inplace=True), conv(f, c, k))
        self.weights = nn.Parameter(torch.full((cfg.recursions,), 1.0 / cfg.recursions))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.dirac_(self.recursive.weight)  # identity: only self-connections at the kernel centre

    def forward_train(self, x: Tensor) -> dict[str, Any]:
        h = self.embed(x)
        predictions = []
        for _ in range(self.recursions):
            h = torch.relu(self.recursive(h))
            predictions.append(x + self.reconstruct(h))
        sr = sum(w * p for w, p in zip(self.weights, predictions))
        return {"sr": sr, "recursions": predictions}

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_train(x)["sr"]


register_model(
    card=ModelCard(
        name="drcn",
        title="Deeply-Recursive Convolutional Network for Image Super-Resolution",
        authors="J. Kim, J. K. Lee, K. M. Lee",
        venue="CVPR",
        year=2016,
        arxiv="1511.04491",
        scales=(2, 3, 4),
        input_space="bicubic",
        color="y",
        recipe=Recipe(
            # Sec. 3.3: L = α·l1 + (1-α)·l2 + β·||W||², l1 = Σ_d Σ_i 1/(2DN)·‖y − ŷ_d‖² (the D predictions' losses
            # averaged), l2 = Σ_i 1/(2N)·‖y − ŷ‖² (the weighted average's): per image a halved pixel SUM, "euclidean".
            loss="drcn",
            optimizer="sgd",  # Sec. 4: SGD, momentum 0.9, weight decay 1e-4
            lr=0.01,  # Sec. 4: initial rate
            momentum=0.9,
            weight_decay=1e-4,  # = β of the Sec. 3.3 loss: applied here, by the optimiser, once
            # Sec. 4: /10 when the validation error stalls for 5 epochs, stop below 1e-6 (4 decays); srpipe has no
            # plateau schedule, so four evenly spaced /10 steps stand in for it.
            schedule="multistep",
            milestones=(0.2, 0.4, 0.6, 0.8),
            gamma=0.1,
            batch_size=64,  # Sec. 4: 64 patches per mini-batch
            patch_size=41,  # Sec. 4: 41×41 patches, stride 21 (= the receptive field)
            iterations=100_000,  # not published (plateau-driven, ~6 days on a Titan X); a reference budget only
            loss_options={
                # Sec. 3.3: α starts high so early recursions converge, then decays toward the final output. The
                # exact schedule is not published; linear 1 → 0 over the first quarter follows jiny2001's port
                # (α = 0 by epoch 25). β: the L2 multiplier of the loss, already in `weight_decay`.
                "alpha_start": 1.0,
                "alpha_end": 0.0,
                "alpha_decay_until": 0.25,
                "beta": 1e-4,
                "reduction": "euclidean",  # Eq. 7-8's 1/(2N)·Σ‖·‖², which lr 0.01 is set for
            },
        ),
        notes="Recursive supervision: every recursion's prediction is scored (forward_train()['recursions']); "
        "91 training images in the paper.",
    ),
    paper=DRCNConfig(),
    tiny=DRCNConfig(features=16, recursions=3),
)(DRCN)

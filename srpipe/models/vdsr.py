"""VDSR: Accurate Image Super-Resolution Using Very Deep Convolutional Networks.

J. Kim, J. K. Lee, K. M. Lee. CVPR 2016 (arXiv 1511.04587).

d = 20 zero-padded 3×3 convolutions with 64 filters and ReLU on the interpolated LR (ILR) image; the network predicts
the residual, added back to its input (Sec. 3.1, Fig. 2). Defaults are the final model's depth 20 and 64 filters
(Sec. 3.1, 5.2): 665K parameters for one channel (3·3·64+64 + 18·(3·3·64·64+64) + 3·3·64+1 = 665,921; 664,704
weights). He initialisation (Sec. 5.2). Very high learning rates are made stable by adjustable gradient clipping: the
bound θ is divided by the current learning rate γ (Sec. 3.2).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from srpipe.models.blocks import conv
from srpipe.models.registry import ArchConfig, ModelCard, Recipe, SRModel, register_model


@dataclass(frozen=True)
class VDSRConfig(ArchConfig):
    features: int = 64
    depth: int = 20  # d, weight layers in total (first + d-2 middle + last)


class VDSR(SRModel):
    """conv-ReLU × (d-1), conv → residual, plus the interpolated input."""

    def __init__(self, scale: int, cfg: VDSRConfig) -> None:
        super().__init__()
        f = cfg.features
        layers: list[nn.Module] = [conv(cfg.channels, f), nn.ReLU(inplace=True)]
        for _ in range(cfg.depth - 2):
            layers += [conv(f, f), nn.ReLU(inplace=True)]
        layers.append(conv(f, cfg.channels))
        self.body = nn.Sequential(*layers)
        for m in self.body:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


register_model(
    card=ModelCard(
        name="vdsr",
        title="Accurate Image Super-Resolution Using Very Deep Convolutional Networks",
        authors="J. Kim, J. K. Lee, K. M. Lee",
        venue="CVPR",
        year=2016,
        arxiv="1511.04587",
        scales=(2, 3, 4),
        input_space="bicubic",
        color="y",
        recipe=Recipe(
            loss="mse",  # Sec. 3.2: Euclidean loss on the reconstructed image (input + residual) ...
            # ... ½‖y − f(x)‖² averaged over the training samples (Sec. 3.1-3.2), i.e. Caffe's EuclideanLoss, which
            # lr 0.1 and θ are set for (a per-pixel mean makes the gradient 41²/2 ≈ 840× smaller). pytorch-vdsr's
            # MSELoss(size_average=False) sums over the batch too (another 64×).
            loss_options={"reduction": "euclidean"},
            optimizer="sgd",  # Sec. 3.2 / 5.2: mini-batch SGD, momentum 0.9, weight decay 1e-4
            lr=0.1,  # Sec. 5.2
            momentum=0.9,
            weight_decay=1e-4,
            schedule="multistep",  # Sec. 5.2: /10 every 20 epochs, 80 epochs in all (decreased 3 times)
            milestones=(0.25, 0.5, 0.75),
            gamma=0.1,
            # θ is not given in the paper; 0.01 is the θ of the same scheme in DRRN's and MemNet's official solvers.
            # Sec. 3.3: adjustable clipping bounds each individual gradient element to [-θ/γ, θ/γ], γ the current rate.
            grad_clip=0.01,
            clip="value_by_lr",
            batch_size=64,  # Sec. 3.2 / 5.2
            patch_size=41,  # Sec. 3.2: patch = receptive field (41×41), sub-images without overlap
            iterations=9_960,  # Sec. 5.2: "80 epochs (9960 iterations with batch size 64)"
        ),
        notes="One network for x2/x3/x4 in the paper (scale-augmented training, Sec. 3.2, 4.3); 291 images "
        "(91 + BSD200) with rotation/flip augmentation (Sec. 5.1).",
    ),
    paper=VDSRConfig(),
    tiny=VDSRConfig(features=16, depth=4),
)(VDSR)

"""MemNet: A Persistent Memory Network for Image Restoration.

Y. Tai, J. Yang, X. Liu, C. Xu. ICCV 2017 (arXiv 1708.02209; code: github.com/tyshiwo/MemNet).

FENet (one conv) → M memory blocks → ReconNet (one conv), on the bicubic-upsampled image (Sec. 3, Fig. 1). A memory
block is a recursive unit, one residual block with two pre-activated 3×3 convs SHARED across R recursions
(B^r = B^{r-1} + F(B^{r-1}); its outputs are the short-term memory), and a gate unit: a pre-activated 1×1 conv over
the concatenation of the long-term memory (FENet's output and every earlier block's output) and the short-term memory,
m + R maps of 64 channels for block m (Sec. 3.1). Multi-supervision (Sec. 3.2): ReconNet (shared) turns every block's
output into a prediction y_m = x + ReconNet(B_m); the output is their learned weighted average Σ w_m·y_m.

Defaults: M6R6 (80 layers) with 64 channels. One channel: FENet 640, six recursive units 6·73,856, gates
Σ_m ((m+6)·64·64 + 64) = 233,856, ReconNet 577, plus 6 weights = 678,215 (676,992 weights: the paper's "677K").

Normalisation: the paper's convs are BN-ReLU-conv, and the authors' Caffe model (MemNet_M6R6_80C64_train.prototxt)
gives each recursion and each block's ReconNet input its own BatchNorm + Scale, sharing only the convs. Those 17,282
affine parameters (695,497 in all) are outside the published 677K, which counts convs only. The paper config runs
ReLU-conv pre-activation without BN (`bn=False`, as for DRRN: BN hurts SR accuracy and ties eval output to batch
statistics); `bn=True` builds the authors' layout. Init: MSRA (He), biases 0. The averaging weights start at 1/M
(Caffe's Scale layers in the authors' model start at 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from srpipe.models.blocks import conv
from srpipe.models.registry import ArchConfig, ModelCard, Recipe, SRModel, register_model


@dataclass(frozen=True)
class MemNetConfig(ArchConfig):
    features: int = 64  # M6R6_80C64: 64 channels
    blocks: int = 6  # M memory blocks
    recursions: int = 6  # R recursions of the shared residual block in each memory block
    bn: bool = False  # True: the authors' unshared BatchNorm+Scale before every conv (see module docstring)


def _norm(channels: int, bn: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if bn else nn.Identity()


def _preact(cin: int, cout: int, bn: bool, kernel_size: int = 3) -> nn.Sequential:
    """(BN-)ReLU-conv, the pre-activation structure of every MemNet conv."""
    return nn.Sequential(_norm(cin, bn), nn.ReLU(), conv(cin, cout, kernel_size))


class MemoryBlock(nn.Module):
    """Recursive unit (shared residual block, R recursions) + gate unit (1×1 conv over long- and short-term memory)."""

    def __init__(self, features: int, recursions: int, long_term: int, bn: bool) -> None:
        super().__init__()
        self.conv_a, self.conv_b = conv(features, features), conv(features, features)  # shared by all recursions
        self.norms = nn.ModuleList(_norm(features, bn) for _ in range(2 * recursions))  # a pair per recursion, unshared
        self.gate = _preact((long_term + recursions) * features, features, bn, kernel_size=1)

    def forward(self, x: Tensor, memory: list[Tensor]) -> Tensor:
        short_term, h = [], x
        for norm_a, norm_b in zip(self.norms[0::2], self.norms[1::2]):
            h = h + self.conv_b(torch.relu(norm_b(self.conv_a(torch.relu(norm_a(h))))))
            short_term.append(h)
        return self.gate(torch.cat(memory + short_term, dim=1))


class MemNet(SRModel):
    """FENet → M memory blocks (dense long-term memory) → shared ReconNet on every block → weighted average."""

    def __init__(self, scale: int, cfg: MemNetConfig) -> None:
        super().__init__()
        f, m, c = cfg.features, cfg.blocks, cfg.channels
        self.fenet = _preact(c, f, cfg.bn)
        self.blocks = nn.ModuleList(MemoryBlock(f, cfg.recursions, i + 1, cfg.bn) for i in range(m))
        # ReconNet: one conv shared by all blocks; its pre-activation BN (if any) is per block, as in the prototxt.
        self.recon_norms = nn.ModuleList(_norm(f, cfg.bn) for _ in range(m))
        self.recon = conv(f, c)
        self.weights = nn.Parameter(torch.full((m,), 1.0 / m))
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
                nn.init.zeros_(mod.bias)

    def forward_train(self, x: Tensor) -> dict[str, Any]:
        memory = [self.fenet(x)]  # long-term memory: B_0, B_1, ...
        for block in self.blocks:
            memory.append(block(memory[-1], memory))
        predictions = [x + self.recon(torch.relu(norm(b))) for norm, b in zip(self.recon_norms, memory[1:])]
        sr = sum(w * p for w, p in zip(self.weights, predictions))
        return {"sr": sr, "blocks": predictions}

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_train(x)["sr"]


register_model(
    card=ModelCard(
        name="memnet",
        title="MemNet: A Persistent Memory Network for Image Restoration",
        authors="Y. Tai, J. Yang, X. Liu, C. Xu",
        venue="ICCV",
        year=2017,
        arxiv="1708.02209",
        scales=(2, 3, 4),
        input_space="bicubic",
        color="y",
        recipe=Recipe(
            # MemNet_M6R6_80C64_train.prototxt: a EuclideanLoss on each of the 6 block predictions and one on their
            # weighted average, every one with loss_weight 1, summed (Sec. 3.2's Eq. 8 with α = 1/(M+1) is that sum
            # divided by M+1: the same equal weights). block_weight / final_weight are those loss_weights.
            loss="memnet",
            loss_options={"reduction": "euclidean", "block_weight": 1.0, "final_weight": 1.0},
            optimizer="sgd",  # official solver: base_lr 0.1, momentum 0.9, weight_decay 1e-4
            lr=0.1,
            # Train prototxt: every convolution's bias has lr_mult 0.1 (weights 1); the Scale layers (BN affine and
            # the averaging weights w_m) keep Caffe's default 1, so the globs name the convolutions.
            lr_mult={
                "fenet.2.bias": 0.1,
                "blocks.*.conv_a.bias": 0.1,
                "blocks.*.conv_b.bias": 0.1,
                "blocks.*.gate.2.bias": 0.1,
                "recon.bias": 0.1,
            },
            momentum=0.9,
            weight_decay=1e-4,
            # Solver: step policy, gamma 0.1, stepsize 200,000 iterations; its max_iter (20M) is a placeholder, so the
            # total is not published. 800K = 3 decays, the shape of VDSR's 80-epoch schedule: a reference only.
            schedule="multistep",
            milestones=(0.25, 0.5, 0.75),
            gamma=0.1,
            # Solver clip_gradients 0.01, divided by the current lr (the README's patch to ClipGradients). Caffe
            # scales all gradients together so their global L2 norm is at most that threshold.
            grad_clip=0.01,
            clip="norm_by_lr",
            batch_size=32,  # train prototxt
            patch_size=31,  # train_31_x234: 31×31 patches, x2/x3/x4 mixed, 291 images
            iterations=800_000,
        ),
        notes="One network for x2/x3/x4 (scale-mixed training set). Multi-supervised: forward_train()['blocks'] holds "
        "the per-block predictions. BN-free pre-activation by default (module docstring).",
    ),
    paper=MemNetConfig(),
    tiny=MemNetConfig(features=16, blocks=2, recursions=2),
)(MemNet)

"""RED-Net (RED30): Image Restoration Using Very Deep Convolutional Encoder-Decoder Networks with Symmetric Skip
Connections.

X.-J. Mao, C. Shen, Y.-B. Yang. NIPS 2016 (arXiv 1603.09056; long version arXiv 1606.08921).

An encoder of conv-ReLU layers and a mirrored decoder of deconv-ReLU layers, all 3×3, stride 1, no pooling, so every
map keeps the image size. Every two layers a skip passes a conv layer's feature maps to its mirrored deconv layer,
where they are summed and rectified (architecture section, Fig. 1). For SR the network takes the bicubic-interpolated
image; the authors' test code (netforward.m) adds the network output to that input, so the last deconv predicts a
residual. Defaults: RED30 = 15 conv + 15 deconv layers, 128 feature maps per layer as in the authors' Caffe model
(REDNet_ch1.prototxt: num_output 128, kernel 3, stride 1, pad 1).

The paper prints no parameter count. Layer spec, one channel: 3·3·128+128 + 14·(3·3·128·128+128) twice + 3·3·128+1 =
4,134,785 (4,131,072 weights: the "4.1M" later papers quote for RED30; 64 maps would give 1.04M).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from srpipe.models.blocks import conv
from srpipe.models.registry import ArchConfig, ModelCard, Recipe, SRModel, register_model


@dataclass(frozen=True)
class REDConfig(ArchConfig):
    features: int = 128  # the authors' Caffe model (see module docstring)
    blocks: int = 15  # conv layers in the encoder = deconv layers in the decoder (RED30: 15 + 15)
    skip_every: int = 2  # a symmetric skip every two layers
    kernel_size: int = 3


class RED(SRModel):
    """Conv encoder, mirrored deconv decoder, symmetric skips every `skip_every` layers, input added at the end."""

    def __init__(self, scale: int, cfg: REDConfig) -> None:
        super().__init__()
        f, n, k, c = cfg.features, cfg.blocks, cfg.kernel_size, cfg.channels
        self.skip_every = cfg.skip_every
        self.encoder = nn.ModuleList(conv(c if i == 0 else f, f, k) for i in range(n))
        self.decoder = nn.ModuleList(nn.ConvTranspose2d(f, c if i == n - 1 else f, k, padding=k // 2) for i in range(n))

    def forward(self, x: Tensor) -> Tensor:
        features = [x]  # features[i]: output of encoder layer i (0: the input image)
        h = x
        for layer in self.encoder:
            h = torch.relu(layer(h))
            features.append(h)
        for j, layer in enumerate(self.decoder[:-1], start=1):
            mirror = len(self.decoder) - j  # the encoder output this decoder output mirrors
            h = layer(h)
            if mirror % self.skip_every == 0:
                h = h + features[mirror]  # summed, then rectified
            h = torch.relu(h)
        return x + self.decoder[-1](h)  # the input is the outermost skip: the decoder predicts the residual


register_model(
    card=ModelCard(
        name="red30",
        title="Image Restoration Using Very Deep Convolutional Encoder-Decoder Networks with Symmetric Skip "
        "Connections",
        authors="X.-J. Mao, C. Shen, Y.-B. Yang",
        venue="NIPS",
        year=2016,
        arxiv="1603.09056",
        scales=(2, 3, 4),
        input_space="bicubic",
        color="y",
        recipe=Recipe(
            # Training facts below are recalled from the paper's experiments section and match the public ports
            # (lyqcom/rednet30, TKallHU/REDNet-pytorch); the stored sources did not let us re-read the paper text.
            loss="mse",  # mean squared error
            optimizer="adam",  # Adam, base learning rate 1e-4
            lr=1e-4,
            schedule="constant",
            milestones=(),
            gamma=1.0,
            batch_size=16,  # not confirmed; the ports use 16
            patch_size=50,  # 50×50 patches from the 300 BSD train+val images
            iterations=300_000,  # not published; a reference budget only
        ),
        notes="128 feature maps (authors' Caffe model); the authors' test averages 8 flipped/rotated passes "
        "(self-ensemble), so the published figures include it: evaluate.self_ensemble_models: [red30] does the same.",
        published_self_ensemble=True,
    ),
    paper=REDConfig(),
    tiny=REDConfig(features=16, blocks=5),
)(RED)

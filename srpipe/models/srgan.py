"""SRGAN: the SRResNet generator fine-tuned adversarially from the MSE-trained SRResNet, with its discriminator and the
VGG19 feature extractor of its content loss (both used by the "srgan" loss, srpipe/train/losses.py).

Christian Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial Network",
CVPR 2017, arXiv:1609.04802. Generator: models/srresnet.py (Fig. 4, top).

Not registered as SR models:
  Discriminator  Fig. 4 (bottom): conv 3×3 (64) + LReLU 0.2, then 7 × [conv 3×3 - BN - LReLU 0.2] with widths
                 64, 128, 128, 256, 256, 512, 512 and strides 2, 1, 2, 1, 2, 1, 2; dense 1024, LReLU, dense 1.
                 Deviations: adaptive average pooling to 6×6 before the dense layers, so any patch ≥ 24 works (an
                 identity on the paper's 96×96 patches, where the net is exactly the paper's), and the final sigmoid is
                 left to the loss (logits out, for BCE-with-logits). Inputs in [0, 1] are mapped to the paper's [-1, 1].
  VGG19Features  torchvision's vgg19().features layout (same module indices), truncated at φ5,4: the 4th conv before
                 the 5th max-pool. The paper defines φ after the ReLU; ESRGAN/BasicSR take conv5_4 before it (denser
                 features, consistent brightness, ESRGAN's argument), the default here (`before_activation=False`
                 gives the paper's). ImageNet mean/std normalisation inside; Y inputs are repeated to 3 channels.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from srpipe.models.blocks import conv
from srpipe.models.registry import ModelCard, Recipe, register_model
from srpipe.models.srresnet import _CARD, SRResNet, SRResNetConfig

# The generator is SRResNet's, registered again under SRGAN's card and recipe.
register_model(
    card=ModelCard(
        name="srgan",
        **_CARD,
        recipe=Recipe(
            # Sec. 2.2, 3.2: l_VGG/5.4 + 1e-3 · adversarial, VGG losses rescaled by 1/12.75; k = 1 D step per G step.
            loss="srgan",
            optimizer="adam",
            lr=1e-4,
            betas=(0.9, 0.999),  # β1 = 0.9 (Sec. 3.2)
            schedule="multistep",
            milestones=(0.5,),  # 1e5 updates at 1e-4, then 1e5 at 1e-5 (Sec. 3.2)
            gamma=0.1,
            batch_size=16,
            patch_size=96,  # 16 random 96×96 HR sub-images per mini-batch (Sec. 3.2)
            iterations=200_000,
            loss_options={
                "content": "vgg54",
                "adversarial_weight": 1e-3,
                "vgg_rescale": 1 / 12.75,
                "discriminator_steps": 1,
                "d_features": 64,  # the discriminator's first width; it doubles to 512 (Fig. 4)
            },
        ),
        notes="Generator = SRResNet (models/srresnet.py); Discriminator and VGG19Features live in this module.",
        init_from="srresnet",  # Sec. 3.2: "we employed the trained MSE-based SRResNet network as initialization"
    ),
    paper=SRResNetConfig(),
    tiny=SRResNetConfig(features=16, blocks=2),
)(SRResNet)


class Discriminator(nn.Module):
    """SRGAN's VGG-style discriminator (Fig. 4); returns one logit per image. See the module docstring."""

    def __init__(self, channels: int = 3, features: int = 64, pool_size: int = 6) -> None:
        super().__init__()
        f = features
        layers: list[nn.Module] = [conv(channels, f, 3), nn.LeakyReLU(0.2, inplace=True)]  # k3n64s1, no BN
        in_ch = f
        for width, stride in [(f, 2), (2 * f, 1), (2 * f, 2), (4 * f, 1), (4 * f, 2), (8 * f, 1), (8 * f, 2)]:
            layers += [conv(in_ch, width, 3, bias=False, stride=stride), nn.BatchNorm2d(width)]
            layers += [nn.LeakyReLU(0.2, inplace=True)]
            in_ch = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(pool_size)  # deviation: identity at the paper's 96×96 patches
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(8 * features * pool_size**2, 1024),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(1024, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(x * 2 - 1)))  # the paper's HR range is [-1, 1]


# torchvision's vgg19 "features" (config E): conv widths, "M" = 2×2 max-pool; every conv is followed by a ReLU.
_VGG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
_CONV5_4 = 34  # index of conv5_4 in vgg19().features (35: its ReLU, 36: pool5)


class VGG19Features(nn.Module):
    """VGG19 φ5,4 feature extractor, frozen; ``features.N`` matches torchvision's ``vgg19().features[N]``."""

    def __init__(self, before_activation: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for v in _VGG19:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_channels, int(v), 3, padding=1), nn.ReLU(inplace=True)]
                in_channels = int(v)
        self.features = nn.Sequential(*layers[: _CONV5_4 + (1 if before_activation else 2)])
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: N×C×H×W in [0, 1], C = 3 or 1 (Y, repeated); returns N×512×H/16×W/16."""
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.features((x - self.mean) / self.std)

    @classmethod
    def load_vgg19(cls, path: str | os.PathLike[str], before_activation: bool = True) -> VGG19Features:
        """Build from a torchvision VGG19 state-dict file (e.g. ``vgg19-dcbb9e9d.pth``); classifier keys are ignored
        and ``N.weight`` keys (the "features." prefix stripped) are accepted too. Raises ValueError on a mismatch."""
        if not os.path.isfile(path):
            raise FileNotFoundError(f"VGG19 weights not found: {path} (torchvision's vgg19-dcbb9e9d.pth is expected)")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # pickle, zip and weights-only errors all mean "not a state dict file"
            raise ValueError(f"{path} is not a torch state-dict file ({type(e).__name__}: {e})") from e
        if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
            raise ValueError(f"{path} does not hold a state dict (a mapping of names to tensors)")
        model = cls(before_activation)
        expected = model.state_dict()
        given = {("features." + k if re.match(r"\d+\.", k) else k): v for k, v in state.items()}
        given = {k: v for k, v in given.items() if k.startswith("features.")}  # drop classifier.*
        missing = sorted(set(expected) - set(given))
        unexpected = sorted(set(given) - set(expected))
        shapes = [
            f"{k}: {tuple(given[k].shape)} vs {tuple(v.shape)}"
            for k, v in expected.items()
            if k in given and given[k].shape != v.shape
        ]
        if missing or unexpected or shapes:
            raise ValueError(
                f"{path} is not a torchvision VGG19 state dict: missing {missing[:4]}, unexpected {unexpected[:4]}, "
                f"shape mismatches {shapes[:4]}"
            )
        model.load_state_dict(given)
        return model


load_vgg19 = VGG19Features.load_vgg19

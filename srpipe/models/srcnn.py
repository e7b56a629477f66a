"""SRCNN: Image Super-Resolution Using Deep Convolutional Networks.

C. Dong, C. C. Loy, K. He, X. Tang. IEEE TPAMI 38(2), 2016 (arXiv 1501.00092); conference version ECCV 2014
("Learning a Deep Convolutional Network for Image Super-Resolution").

Three layers on the bicubic-upsampled image: patch extraction f1×f1×n1, non-linear mapping f2×f2×n2, reconstruction
f3×f3 (Sec. 3.1). Defaults are the TPAMI's 9-5-5 with n1=64, n2=32 (Sec. 4.3; "57K" parameters for one channel:
81·64+64 + 64·25·32+32 + 32·25+1 = 57,281, of which 57,184 weights). The paper trains without padding and scores
only the centre; srpipe needs a same-size output, so each layer pads by edge replication, as the authors' MATLAB
test code does (`imfilter(..., 'same', 'replicate')` in SRCNN.m). Init: Gaussian std 0.001, biases 0 (Sec. 3.3).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from srpipe.models.registry import ArchConfig, ModelCard, Recipe, SRModel, register_model


@dataclass(frozen=True)
class SRCNNConfig(ArchConfig):
    features: tuple[int, int] = (64, 32)  # n1, n2 (Sec. 3.1)
    kernel_size: tuple[int, int, int] = (9, 5, 5)  # f1-f2-f3: the TPAMI's larger 9-5-5 (Sec. 4.3), not ECCV's 9-1-5
    # Sec. 3.3: N(0, 0.001) weights. From there SRCNN needs ~1e8 back-propagations; None keeps PyTorch's default
    # (Kaiming-uniform) init, which the tiny CPU config uses so that a few thousand steps get past bicubic.
    init_std: float | None = 1e-3


def _conv(cin: int, cout: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, padding_mode="replicate")


class SRCNN(SRModel):
    """Patch extraction → non-linear mapping → reconstruction, on the bicubic-upsampled image."""

    def __init__(self, scale: int, cfg: SRCNNConfig) -> None:
        super().__init__()
        (n1, n2), (f1, f2, f3) = cfg.features, cfg.kernel_size
        self.body = nn.Sequential(
            _conv(cfg.channels, n1, f1),
            nn.ReLU(inplace=True),
            _conv(n1, n2, f2),
            nn.ReLU(inplace=True),
        )
        self.reconstruct = _conv(n2, cfg.channels, f3)
        for m in [*self.body, self.reconstruct]:
            if isinstance(m, nn.Conv2d) and cfg.init_std is not None:
                nn.init.normal_(m.weight, std=cfg.init_std)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.reconstruct(self.body(x))


register_model(
    card=ModelCard(
        name="srcnn",
        title="Image Super-Resolution Using Deep Convolutional Networks",
        authors="C. Dong, C. C. Loy, K. He, X. Tang",
        venue="TPAMI",
        year=2016,
        arxiv="1501.00092",
        scales=(2, 3, 4),
        input_space="bicubic",
        color="y",
        recipe=Recipe(
            loss="mse",  # Sec. 3.3: mean squared error, as Caffe's EuclideanLoss (SRCNN_net.prototxt) ...
            loss_options={"reduction": "euclidean"},  # ... 1/(2N)·Σ‖ŷ−y‖², which the rates below are set for
            optimizer="sgd",  # Sec. 3.3: SGD with momentum 0.9
            lr=1e-4,  # Sec. 3.3: 1e-4 for the first two layers ...
            # ... and 1e-5 for the last, which the paper finds matters for convergence. SRCNN_net.prototxt (the
            # authors' Caffe training files, mirrored in WangDequan/SRCNN) also gives every bias lr_mult 0.1: conv1 and
            # conv2 (1, 0.1), conv3 (0.1, 0.1).
            lr_mult={"reconstruct.*": 0.1, "*.bias": 0.1},
            momentum=0.9,
            weight_decay=0.0,
            schedule="constant",  # fixed learning rate throughout
            milestones=(),
            gamma=1.0,
            batch_size=128,  # the authors' Caffe SRCNN_net.prototxt (not stated in the paper text)
            patch_size=33,  # Sec. 4.1: f_sub = 33 sub-images (stride 14 on 91 images, 33 on ImageNet)
            # The TPAMI's convergence plots run to ~8e8 back-propagations (recalled, not re-read); counted as samples,
            # 8e8 / 128 ≈ 6.25M iterations. A reference only.
            iterations=6_250_000,
        ),
        notes="9-5-5 (TPAMI); ImageNet-trained in the paper, 91-image numbers are lower. Replicate padding as in the "
        "authors' test code.",
    ),
    paper=SRCNNConfig(),
    tiny=SRCNNConfig(features=(16, 8), init_std=None),
    # The TPAMI's other filter sizes (Sec. 4.3.2, Fig. 8), each with a released model in the authors' test code;
    # "9-5-5" is `paper` under its own name. 9-1-5 is also the ECCV 2014 network.
    variants={
        "9-5-5": SRCNNConfig(kernel_size=(9, 5, 5)),
        "9-3-5": SRCNNConfig(kernel_size=(9, 3, 5)),
        "9-1-5": SRCNNConfig(kernel_size=(9, 1, 5)),
    },
)(SRCNN)

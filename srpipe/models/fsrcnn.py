"""FSRCNN: Accelerating the Super-Resolution Convolutional Neural Network.

C. Dong, C. C. Loy, X. Tang. ECCV 2016 (arXiv 1608.00367).

On the LR image: feature extraction Conv(5, d) → shrinking Conv(1, s) → m × mapping Conv(3, s) → expanding Conv(1, d)
→ a 9×9 deconvolution with stride = scale (Sec. 3.2), PReLU after every layer but the last. Defaults are FSRCNN
(d, s, m) = (56, 12, 4) (Sec. 3.2): 12,464 weights (the paper's count), and with 173 biases and 172
per-channel PReLU slopes 12,809 parameters for one channel.

Deconvolution geometry follows the authors' MATLAB test code (FSRCNN_test.zip from the project page
mmlab.ie.cuhk.edu.hk/projects/FSRCNN.html, `deconv.m`, as circulated e.g. beside yaBorn/Super-resolution
mat_FSRCNN_test/FSRCNN.m): it scatters the 9×9 kernel for LR pixel i at HR rows s·i - 4 … s·i + 4 and keeps
exactly s·H rows, i.e. the kernel centre sits on HR pixel s·i at every scale. In PyTorch terms output =
(H-1)·s - 2p + 9 + op with p = (9-1)/2 = 4 and op = s - 1 at ×2, ×3 and ×4 alike (the layout of the common PyTorch
port yjn870/FSRCNN-pytorch too). An earlier srpipe placement (p = 3 at ×3/×4, "centred") was one HR pixel off the
authors' weights, ≈6 dB. Not modelled: that test code also replicate-pads the deconvolution's input by one LR pixel
and its convolutions pad by replication, which changes only the outermost pixels. Caffe's deconvolution gave
n·f_sub - n + 1 pixels, so the paper cropped its HR sub-images instead (Sec. 4.1). Other layers zero-pad
"according to the filter size" (Sec. 4.1). Init (Sec. 4.1): He's PReLU method for the convolutions, Gaussian std
0.001 for the deconvolution.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from srpipe.models.blocks import conv
from srpipe.models.registry import ArchConfig, ModelCard, Recipe, SRModel, register_model


@dataclass(frozen=True)
class FSRCNNConfig(ArchConfig):
    features: int = 56  # d, LR feature dimension
    shrink: int = 12  # s, shrunk mapping width
    blocks: int = 4  # m, number of 3×3 mapping layers
    kernel_size: int = 9  # deconvolution kernel (the largest layer, Sec. 3.2)


def _conv_prelu(cin: int, cout: int, k: int) -> list[nn.Module]:
    return [conv(cin, cout, k), nn.PReLU(cout)]


class FSRCNN(SRModel):
    """Extract → shrink → map → expand in LR space, then one strided deconvolution to HR."""

    def __init__(self, scale: int, cfg: FSRCNNConfig) -> None:
        super().__init__()
        d, s, k = cfg.features, cfg.shrink, cfg.kernel_size
        layers = _conv_prelu(cfg.channels, d, 5) + _conv_prelu(d, s, 1)
        for _ in range(cfg.blocks):
            layers += _conv_prelu(s, s, 3)
        layers += _conv_prelu(s, d, 1)
        self.body = nn.Sequential(*layers)
        # kernel centre on HR pixel s·i (the authors' deconv.m): p = (k-1)/2, op = s-1 gives exactly s·H
        self.deconv = nn.ConvTranspose2d(
            d, cfg.channels, k, stride=scale, padding=(k - 1) // 2, output_padding=scale - 1 - (k - 1) % 2
        )
        for m in self.body:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0.25, nonlinearity="leaky_relu")  # PReLU starts at slope 0.25
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.deconv.weight, std=1e-3)
        nn.init.zeros_(self.deconv.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.deconv(self.body(x))


register_model(
    card=ModelCard(
        name="fsrcnn",
        title="Accelerating the Super-Resolution Convolutional Neural Network",
        authors="C. Dong, C. C. Loy, X. Tang",
        venue="ECCV",
        year=2016,
        arxiv="1608.00367",
        scales=(2, 3, 4),
        input_space="lr",
        color="y",
        recipe=Recipe(
            loss="mse",  # Sec. 3.2: mean squared error, as Caffe's EuclideanLoss in the authors' training prototxt ...
            loss_options={"reduction": "euclidean"},  # ... 1/(2N)·Σ‖ŷ−y‖², which the rates below are set for
            optimizer="sgd",  # Sec. 3.2: SGD (Caffe); momentum not stated, Caffe's usual 0.9 assumed
            lr=1e-3,  # Sec. 4.1: 1e-3 for the convolution layers ...
            # ... and 1e-4 for the deconvolution layer. The authors' Caffe train prototxt gives the convolutions'
            # biases lr_mult 0.1 (weights 1), the layout of SRCNN_net.prototxt; PReLU slopes keep Caffe's default 1.
            lr_mult={"deconv.*": 0.1, "*.bias": 0.1},
            momentum=0.9,
            schedule="constant",  # Sec. 4.1: fixed rate on 91 images, then fine-tuned on + General-100 at half the rate
            milestones=(),
            gamma=1.0,
            batch_size=128,  # Caffe FSRCNN_net.prototxt as circulated with the authors' code (not in the paper text)
            # LR sub-images 10/7/6 for x2/x3/x4 (HR 20/21/24) as in yjn870/FSRCNN-pytorch; the paper (Sec. 4.1) names
            # f_sub without the values in its text. x3's HR side here.
            patch_size=21,
            iterations=1_000_000,  # not published; a reference budget only
            # Sec. 4.1 "Data augmentation": every image also downscaled by 0.9, 0.8, 0.7 and 0.6 (and rotated by 90,
            # 180 and 270°, which srpipe's flips/rotations cover): 19 times the 91 images.
            rescale=(0.9, 0.8, 0.7, 0.6),
        ),
        notes="(56,12,4); x3 trained from scratch, x2/x4 by fine-tuning only the deconvolution (Sec. 4.4); 91 images "
        "+ General-100 with scaling/rotation augmentation. Deconvolution padding gives exactly scale × input.",
    ),
    paper=FSRCNNConfig(),
    tiny=FSRCNNConfig(features=16, shrink=8, blocks=2),
)(FSRCNN)

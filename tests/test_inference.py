"""Whole-image inference: tiling (exact for local nets, within 0.01 dB for RCAN), the x8 self-ensemble, the Y-channel
path with bicubic chroma, and the bicubic input space."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from srpipe.color import rgb_to_ycbcr
from srpipe.degrade import bicubic_lr, bicubic_up, imresize
from srpipe.inference import self_ensemble, super_resolve, tiled, to_uint8
from srpipe.metrics import psnr
from srpipe.models import create_model

pytestmark = pytest.mark.usefixtures("one_thread")


def _photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A photo-like H×W×3 uint8 test image: smooth shading, hard edges and fine texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack([np.sin(6 * xx + c) * np.cos(4 * yy - c) for c in range(3)], axis=-1) * 80 + 128
    base[(yy - 0.4) ** 2 + (xx - 0.5) ** 2 < 0.05] -= 60  # a disc: sharp edges
    base[:, (np.arange(width) // 7) % 2 == 0] += 25  # stripes: high frequencies
    base += rng.normal(0, 6, base.shape)
    return np.clip(np.rint(base), 0, 255).astype(np.uint8)


def _batch(img: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]


@pytest.fixture(scope="module")
def pair() -> tuple[Tensor, Tensor]:
    """(HR, LR x2) as 1×3×H×W uint8: a 192×256 HR image, several tiles wide at the tile sizes below."""
    hr, lr = bicubic_lr(_photo(192, 256), 2)
    return _batch(hr), _batch(lr)


@pytest.fixture(scope="module")
def edsr() -> nn.Module:
    torch.manual_seed(0)
    return create_model("edsr", 2, "tiny").eval()  # receptive field radius 8 LR px: 7 3×3 convs at LR, 1 at HR


def test_tiles_equal_the_whole_image_for_a_local_model(pair: tuple[Tensor, Tensor], edsr: nn.Module) -> None:
    _, lr = pair
    whole = super_resolve(edsr, lr, 2)
    tiles = super_resolve(edsr, lr, 2, tile=40, overlap=16)  # 96×128 LR: uneven last tiles on both axes
    assert tiles.shape == whole.shape == (1, 3, 192, 256)
    assert (tiles - whole).abs().max().item() <= 1e-5
    # Control: with an overlap below the receptive field the seams show, so the check above can fail.
    seams = super_resolve(edsr, lr, 2, tile=40, overlap=2)
    assert (seams - whole).abs().max().item() > 1e-3


def _rcan_tiling_check(hr: Tensor, lr: Tensor, scale: int, tile: int) -> None:
    """Tiled RCAN scores within 0.01 dB of untiled against HR, and its output is > 65 dB PSNR from the untiled one."""
    torch.manual_seed(0)
    rcan = create_model("rcan", scale, "tiny").eval()  # channel attention pools the whole input: only approximate
    whole = to_uint8(super_resolve(rcan, lr, scale))
    tiles = to_uint8(super_resolve(rcan, lr, scale, tile=tile, overlap=16))
    assert abs(psnr(whole, hr, scale).item() - psnr(tiles, hr, scale).item()) < 0.01
    # PSNR against HR barely moves for an untrained net, so also compare the two outputs: a 4-px overlap would give
    # about 50 dB here, no overlap about 40 dB.
    assert psnr(tiles, whole, scale).item() > 65


def test_tiles_of_rcan_score_within_a_hundredth_of_a_db(pair: tuple[Tensor, Tensor]) -> None:
    _rcan_tiling_check(*pair, scale=2, tile=40)


def test_tiled_edge_cases() -> None:
    calls = []

    def fn(t: Tensor) -> Tensor:
        calls.append(t.shape[-2:])
        return t.repeat_interleave(3, -1).repeat_interleave(3, -2)

    x = torch.rand(1, 2, 10, 30)
    out = tiled(fn, tile=12, overlap=4, out_scale=3)(x)  # lower than a tile, wider: one row of full-height tiles
    assert {tuple(c) for c in calls} == {(10, 12)} and len(calls) == 4  # x0 = 0, 8, 16, 18 (flush with the end)
    assert torch.equal(out, fn(x))
    calls.clear()
    assert torch.equal(tiled(fn, tile=64, overlap=4, out_scale=3)(x), fn(x)) and len(calls) == 2  # one tile
    assert tiled(fn, tile=0, overlap=4, out_scale=3) is fn
    with pytest.raises(ValueError, match="overlap 16 must be smaller than the tile 16"):
        tiled(fn, tile=16, overlap=16, out_scale=3)


def _d4_equivariant(x: Tensor) -> Tensor:
    """Nearest x2 upsampling, a blur with a kernel symmetric under every flip/transpose, then a nonlinearity."""
    k = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]], dtype=x.dtype) / 16
    up = x.repeat_interleave(2, -1).repeat_interleave(2, -2)
    blurred = F.conv2d(up, k.expand(x.shape[1], 1, 3, 3), padding=1, groups=x.shape[1])
    return torch.tanh(3 * blurred) + up**2


def test_self_ensemble_of_an_equivariant_function_is_the_function() -> None:
    x = torch.rand(2, 3, 11, 17, dtype=torch.float64, generator=torch.Generator().manual_seed(0))  # not square
    torch.testing.assert_close(self_ensemble(_d4_equivariant)(x), _d4_equivariant(x).float(), atol=1e-6, rtol=0)


def test_self_ensemble_runs_the_eight_distinct_transforms_and_averages() -> None:
    seen = []

    def ramp(t: Tensor) -> Tensor:  # not equivariant: adds the column index
        seen.append(t.clone())
        return t + torch.arange(t.shape[-1], dtype=t.dtype)

    x = torch.rand(1, 1, 4, 6, generator=torch.Generator().manual_seed(1))
    out = self_ensemble(ramp)(x)
    assert len(seen) == 8 and len({(tuple(t.shape), t.numpy().tobytes()) for t in seen}) == 8
    # Column ramp 0..5 seen through the 8 transforms: flips give 5 - j, transposes a row ramp 0..3.
    cols = torch.arange(6.0)
    rows = torch.arange(4.0)[:, None]
    expected = x + (2 * cols + 2 * (5 - cols) + 2 * rows + 2 * (3 - rows)) / 8
    torch.testing.assert_close(out, expected)


def test_self_ensemble_of_bicubic_is_bicubic(pair: tuple[Tensor, Tensor]) -> None:
    _, lr = pair
    x = lr[..., 30:70, 50:110].float() / 255
    float_bicubic = lambda t: imresize(t, 4.0)  # noqa: E731
    torch.testing.assert_close(self_ensemble(float_bicubic)(x), float_bicubic(x), atol=1e-5, rtol=0)
    # The registered baseline rounds to uint8 after each 1-D pass (MATLAB), and a transpose swaps the pass order:
    # the ensemble may move a pixel by at most one level there, never more.
    bicubic = create_model("bicubic", 4)
    with torch.inference_mode():
        diff = (self_ensemble(bicubic)(x) - bicubic(x)).abs()
    assert diff.max().item() <= 1 / 255 + 1e-6


def test_y_mode_takes_chroma_from_bicubic(pair: tuple[Tensor, Tensor]) -> None:
    _, lr = pair
    lr = lr[..., :40, :56]
    torch.manual_seed(1)
    net = create_model("edsr", 2, "tiny", channels=1).eval()
    sr = super_resolve(net, lr, 2, color="y")
    assert sr.shape == (1, 3, 80, 112)
    ycc = rgb_to_ycbcr(sr)
    lr_ycc = rgb_to_ycbcr(lr.float() / 255)
    torch.testing.assert_close(ycc[:, 1:], imresize(lr_ycc[:, 1:], 2.0), atol=1e-5, rtol=0)
    with torch.inference_mode():
        torch.testing.assert_close(ycc[:, :1], net(lr_ycc[:, :1]), atol=1e-5, rtol=0)


class _Probe(nn.Module):
    """Identity that remembers its input."""

    def forward(self, x: Tensor) -> Tensor:
        self.seen = x.clone()
        return x


def test_bicubic_input_space_feeds_the_upsampled_image(pair: tuple[Tensor, Tensor]) -> None:
    _, lr = pair
    lr = lr[..., :30, :44]
    expected = _batch(bicubic_up(lr[0].permute(1, 2, 0).numpy(), 3)).float() / 255
    probe = _Probe()
    sr = super_resolve(probe, lr, 3, input_space="bicubic")
    assert torch.equal(probe.seen, expected) and torch.equal(sr, expected)
    # Tiles are in HR pixels there (output scale 1): an identity tiled is the identity.
    assert torch.equal(super_resolve(probe, lr, 3, input_space="bicubic", tile=40, overlap=8), expected)
    # With Y: the network sees the luma of the upsampled image, chroma is the upsampled image's.
    sr_y = super_resolve(probe, lr, 3, input_space="bicubic", color="y")
    assert probe.seen.shape == (1, 1, 90, 132)
    torch.testing.assert_close(sr_y, expected, atol=1e-5, rtol=0)


def test_to_uint8_clips_and_rounds() -> None:
    sr = torch.tensor([-0.3, 0.0, 0.2, 100.4 / 255, 100.6 / 255, 1.0, 1.7])
    out = to_uint8(sr)
    assert out.dtype == torch.uint8
    assert out.tolist() == [0, 0, 51, 100, 101, 255, 255]


@pytest.fixture
def shared_butterfly() -> np.ndarray:
    path = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks" / "Set5" / "butterfly.png"
    if not path.exists():
        pytest.skip(f"no shared benchmark image at {path}")
    return np.asarray(Image.open(path).convert("RGB"))


def test_tiles_of_rcan_on_set5_butterfly(shared_butterfly: np.ndarray) -> None:
    hr, lr = (_batch(a) for a in bicubic_lr(shared_butterfly, 4))
    _rcan_tiling_check(hr, lr, scale=4, tile=32)

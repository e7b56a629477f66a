"""Whole-image inference: tiling (exact for local nets, within 0.01 dB for RCAN), streaming tiles into uint8 and the
tile a memory budget allows, the x8 self-ensemble, the Y-channel path with bicubic chroma, and the bicubic input
space."""

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
from srpipe.inference import (
    bytes_per_pixel,
    plan_tile,
    self_ensemble,
    sr_function,
    super_resolve,
    super_resolve_uint8,
    tile_boxes,
    tile_budget,
    tiled,
    to_uint8,
)
from srpipe.memory import peak_allocated_bytes, rss_bytes
from srpipe.metrics import psnr
from srpipe.models import create_model, get_card

CPU = torch.device("cpu")

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


@pytest.mark.parametrize(
    ("h", "w", "tile", "overlap"), [(97, 130, 40, 16), (10, 30, 12, 4), (64, 64, 64, 8), (5, 300, 33, 9)]
)
def test_tile_boxes_cover_the_image_with_context_around_kept_pixels(h: int, w: int, tile: int, overlap: int) -> None:
    cover = np.zeros((h, w), int)
    half = overlap // 2
    for (y0, y1, x0, x1), (ky0, ky1, kx0, kx1) in tile_boxes(h, w, tile, overlap):
        assert 0 <= y0 <= ky0 < ky1 <= y1 <= h and 0 <= x0 <= kx0 < kx1 <= x1 <= w
        assert y1 - y0 <= tile and x1 - x0 <= tile
        assert (ky0 - y0 >= half or ky0 == 0) and (y1 - ky1 >= half or ky1 == h)
        assert (kx0 - x0 >= half or kx0 == 0) and (x1 - kx1 >= half or kx1 == w)
        cover[ky0:ky1, kx0:kx1] += 1
    assert cover.min() >= 1
    assert tile_boxes(h, w, 0, overlap) == [((0, h, 0, w), (0, h, 0, w))]


@pytest.mark.parametrize(
    ("name", "color", "ensemble"),
    [("edsr", "rgb", False), ("edsr", "y", True), ("vdsr", "y", False), ("espcn", "rgb", False)],
)
def test_streamed_tiles_equal_the_whole_image(
    pair: tuple[Tensor, Tensor], name: str, color: str, ensemble: bool
) -> None:
    hr, lr = pair
    torch.manual_seed(0)
    net = create_model(name, 2, "tiny", channels=1 if color == "y" else 3).eval()
    fn = sr_function(net, 2, get_card(name).input_space, color, ensemble)
    pixels = lr[0].permute(1, 2, 0).numpy()
    whole = super_resolve_uint8(fn, pixels, 2, 0, 16, CPU)
    # The whole image streamed is what the float path rounds to: evaluate and upscale agree.
    expected = to_uint8(super_resolve(net, lr, 2, get_card(name).input_space, color, ensemble=ensemble))
    np.testing.assert_array_equal(whole, expected[0].permute(1, 2, 0).numpy())
    tiles = super_resolve_uint8(fn, pixels, 2, 40, 16, CPU)  # 96×128 LR: uneven last tiles on both axes
    as_batch = [torch.from_numpy(a).permute(2, 0, 1)[None] for a in (whole, tiles)]
    assert abs(psnr(as_batch[0], hr, 2).item() - psnr(as_batch[1], hr, 2).item()) <= 0.01
    diff = np.abs(whole.astype(int) - tiles.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # equal but for a float-rounding tie here and there


def test_plan_tile_takes_the_whole_image_when_it_fits_else_the_largest_tile() -> None:
    assert plan_tile(100.0, 100 * 50 * 60, 50, 60, overlap=16) == 0
    assert plan_tile(100.0, 100 * 40 * 40 + 99, 500, 600, overlap=16) == 40
    with pytest.raises(MemoryError, match=r"32-px tiles .* raise --max-memory by at least"):
        plan_tile(100.0, 100 * 31 * 31, 500, 600, overlap=16)  # a tile must be twice the overlap
    with pytest.raises(MemoryError, match="raise --max-memory"):
        plan_tile(100.0, -5e6, 500, 600, overlap=16)


def test_tile_budget_is_what_the_cap_leaves_beside_the_result() -> None:
    cap = rss_bytes() + 10**9
    assert 0.8e9 < tile_budget(cap, 10**8, CPU) <= 0.9e9  # what the process holds now is already counted
    with pytest.raises(MemoryError, match=r"the result needs 2 GB .* raise --max-memory"):
        tile_budget(cap, 2 * 10**9, CPU)


def test_the_probe_bounds_the_memory_of_a_whole_image(pair: tuple[Tensor, Tensor], edsr: nn.Module) -> None:
    _, lr = pair
    fn = sr_function(edsr, 2)
    per_px = bytes_per_pixel(fn)  # measured on a 32-px probe
    with torch.inference_mode():
        measured = peak_allocated_bytes(lambda: to_uint8(fn(lr)), CPU)  # the whole 96×128 image
    assert measured <= per_px * 96 * 128 <= 2 * measured


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

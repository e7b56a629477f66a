"""MATLAB-compatible imresize: hand-computed values, MATLAB's size rule, uint8 rounding, devices and batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from srpipe.degrade import bicubic_lr, bicubic_up, imresize, modcrop, output_size

# A 4×4 image whose rows are all [1, 2, 4, 8]: the vertical pass is the identity, so each output row is the 1-D
# MATLAB resize of the row. Values worked by hand from MATLAB's algorithm (kernel a = -0.5, u = x/s + (1 - 1/s)/2,
# symmetric padding aux = [1 2 3 4 4 3 2 1]):
#  x2, first output: u = 0.75, taps at 1-based -1..2 → pixels 2,1,1,2 with weights -0.0234375, 0.2265625,
#    0.8671875, -0.0703125 → 0.90625; last output: u = 4.25 → pixels 4,8,8,4 → 8.375.
#  x0.5 (antialiased, kernel width 8): first output, u = 1.5 → 1.375.
ROW = torch.tensor([1.0, 2.0, 4.0, 8.0], dtype=torch.float64)


def test_upscale_matches_hand_computed_matlab_values() -> None:
    out = imresize(ROW.expand(4, 4), 2.0)
    assert out.shape == (8, 8)
    assert out[:, 0].tolist() == pytest.approx([0.90625] * 8, abs=1e-12)
    assert out[:, -1].tolist() == pytest.approx([8.375] * 8, abs=1e-12)


def test_downscale_is_antialiased_like_matlab() -> None:
    out = imresize(ROW.expand(4, 4), 0.5)
    assert out.shape == (2, 2)
    assert out[0, 0].item() == pytest.approx(1.375, abs=1e-12)
    # Without antialiasing the kernel stays 4 taps wide: it aliases, so a noisy image shrinks differently.
    noise = torch.rand(16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(imresize(noise, 0.5), imresize(noise, 0.5, antialias=False))


def test_constant_image_is_preserved_and_sizes_follow_ceil() -> None:
    img = torch.full((1, 3, 17, 10), 7.0)
    out = imresize(img, 1 / 3)
    assert out.shape == (1, 3, 6, 4)  # ceil(17/3) = 6, ceil(10/3) = 4
    assert torch.allclose(out, torch.full_like(out, 7.0))
    assert output_size(255, 1 / 3) == 85  # 255·(1/3) is 84.99999999999999 in binary


def test_uint8_in_uint8_out_rounded_per_pass() -> None:
    g = torch.Generator().manual_seed(0)
    img = torch.randint(0, 256, (2, 3, 24, 20), dtype=torch.uint8, generator=g)
    out = imresize(img, 0.5)
    assert out.dtype == torch.uint8 and out.shape == (2, 3, 12, 10)
    # MATLAB rounds after each 1-D pass: emulate it with two float passes and explicit rounding.
    rows = torch.floor(imresize(img.double(), size=(12, 20)) + 0.5).clamp(0, 255)
    both = torch.floor(imresize(rows, size=(12, 10)) + 0.5).clamp(0, 255)
    assert torch.equal(out, both.to(torch.uint8))


def test_batch_equals_per_image_and_float32_close_to_float64() -> None:
    x = torch.rand(3, 3, 16, 16, dtype=torch.float64)
    batch = imresize(x, 4.0)
    for i in range(3):
        assert torch.equal(batch[i], imresize(x[i], 4.0))
    assert torch.allclose(imresize(x.float(), 4.0).double(), batch, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu() -> None:
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(imresize(x.cuda(), 0.25).cpu(), imresize(x, 0.25), atol=1e-5)


def test_bicubic_degradation_round_trip_shapes() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (37, 50, 3), dtype=np.uint8)
    hr, lr = bicubic_lr(img, 4)
    assert hr.shape == (36, 48, 3) and lr.shape == (9, 12, 3) and lr.dtype == np.uint8
    assert bicubic_up(lr, 4).shape == hr.shape
    assert modcrop(img, 3).shape == (36, 48, 3)
    with pytest.raises(ValueError, match="scale must be one of"):
        bicubic_lr(img, 5)

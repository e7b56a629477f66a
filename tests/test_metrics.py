"""PSNR/SSIM in the paper convention, against independent implementations and hand values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from srpipe.metrics import psnr, quantize, rgb_to_y, score, ssim


def _pair(seed: int = 0, shape: tuple[int, ...] = (2, 3, 40, 36)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    hr = torch.randint(0, 256, shape, generator=g).double()
    sr = (hr + torch.randint(-20, 21, shape, generator=g)).clamp(0, 255)
    return sr, hr


def test_bt601_luma() -> None:
    px = torch.tensor([[0.0, 0.0, 0.0], [255.0, 255.0, 255.0], [255.0, 0.0, 0.0]]).T.reshape(1, 3, 1, 3)
    assert rgb_to_y(px).flatten().tolist() == pytest.approx([16.0, 235.0, 16.0 + 65.481])


def test_psnr_by_hand_with_crop() -> None:
    hr = torch.zeros(1, 1, 10, 10)
    sr = hr.clone()
    sr[..., 2:8, 2:8] = 10.0  # inside the crop: MSE = 100 → 10·log10(255²/100)
    sr[..., 0, :] = 255.0  # on the 2-pixel border: cropped away
    assert psnr(sr, hr, crop_border=2).item() == pytest.approx(10 * np.log10(255**2 / 100))


def test_ssim_matches_scikit_image() -> None:
    metrics = pytest.importorskip("skimage.metrics")
    sr, hr = _pair()
    ours = ssim(sr, hr, crop_border=4)
    for i in range(2):
        y_sr = rgb_to_y(sr[i : i + 1])[0, 0, 4:-4, 4:-4].numpy()
        y_hr = rgb_to_y(hr[i : i + 1])[0, 0, 4:-4, 4:-4].numpy()
        ref = metrics.structural_similarity(
            y_sr, y_hr, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
        )
        assert ours[i].item() == pytest.approx(ref, abs=1e-6)


def test_psnr_matches_scikit_image_rgb_mode() -> None:
    metrics = pytest.importorskip("skimage.metrics")
    sr, hr = _pair(1)
    ours = psnr(sr, hr, crop_border=3, y_only=False)
    ref = metrics.peak_signal_noise_ratio(hr[0, :, 3:-3, 3:-3].numpy(), sr[0, :, 3:-3, 3:-3].numpy(), data_range=255)
    assert ours[0].item() == pytest.approx(ref, abs=1e-9)


def test_gray_source_is_its_own_y() -> None:
    sr, hr = _pair(2)
    sr_g, hr_g = sr[:, :1].expand(-1, 3, -1, -1), hr[:, :1].expand(-1, 3, -1, -1)
    as_gray = psnr(sr_g, hr_g, 2, gray=True)
    direct = psnr(sr[:, :1], hr[:, :1], 2, y_only=False)
    assert torch.allclose(as_gray, direct)
    assert not torch.allclose(psnr(sr_g, hr_g, 2, gray=False), direct)  # BT.601 on R=G=B compresses the range
    mixed = psnr(sr_g, hr_g, 2, gray=torch.tensor([True, False]))
    assert mixed[0] == as_gray[0] and mixed[1] != as_gray[1]


def test_quantize_clips_and_rounds() -> None:
    x = torch.tensor([-0.1, 0.0, 0.5 / 255, 1.4 / 255, 1.2])
    assert quantize(x).tolist() == [0.0, 0.0, 0.0, 1.0, 255.0]  # round half to even on exact .5, as numpy


def test_score_rejects_mismatched_sizes() -> None:
    a = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="sizes must match"):
        score(a, np.zeros((32, 33, 3), np.uint8), 2)
    assert score(a, a, 2)["psnr"] == float("inf")
    with pytest.raises(ValueError, match="too small for SSIM"):
        score(a[:14, :14], a[:14, :14], 2)

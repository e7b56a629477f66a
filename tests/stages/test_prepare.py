"""Stage `prepare`: store layout, exact MATLAB-bicubic LR, determinism, skips, clear errors and atomic replacement."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from srpipe.config import PrepareParams
from srpipe.data.images import ImageError
from srpipe.data.store import Store
from srpipe.degrade import bicubic_lr, modcrop
from srpipe.stages.prepare import prepare

SCALES = (2, 4)
STEP = 4  # lcm(SCALES): HR is cropped to a multiple of it
PARAMS = PrepareParams(
    train=("toy/train", "missing/train", "gone/train"),
    valid=("toy/valid",),
    lr_patch=8,
    stride=4,
    max_valid_side=64,
)
FILES = {"hr.u8", "lr_x2.u8", "lr_x4.u8", "images.parquet", "patches.parquet", "meta.json"}


def _png(path: Path, height: int, width: int, mode: str = "RGB", seed: int = 0) -> Path:
    """A smooth random image (bicubic overshoot stays moderate) with `mode`'s channel count."""
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    coarse = rng.integers(0, 256, (height // 4 + 2, width // 4 + 2, channels)).astype(np.uint8)
    img = Image.fromarray(coarse[..., 0] if mode == "L" else coarse, mode).resize((width, height), Image.BILINEAR)
    arr = np.asarray(img).copy()
    arr ^= rng.integers(0, 8, arr.shape, dtype=np.uint8)  # texture, so every pixel matters
    if mode == "RGBA":
        arr[..., 3] = rng.integers(0, 256, arr.shape[:2], dtype=np.uint8)  # alpha must be dropped, not blended
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path)
    return path


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    """data/raw-like tree: toy/{train,valid}, a `gone` dataset marked unavailable, `missing` not there at all."""
    root = tmp_path / "raw"
    _png(root / "toy/train/a_rgb.png", 70, 90, seed=1)  # 70 is no multiple of 4: modcrop to 68
    _png(root / "toy/train/b_gray.png", 45, 52, "L", seed=2)
    _png(root / "toy/train/c_rgba.png", 50, 61, "RGBA", seed=3)
    _png(root / "toy/train/d_tiny.png", 30, 40, seed=4)  # LR x4 is 7 px < lr_patch 8: skipped
    _png(root / "toy/valid/v.png", 90, 110, seed=5)  # centre-cropped to 64
    _png(root / "gone/train/should_not_appear.png", 64, 64, seed=6)
    (root / "gone/UNAVAILABLE.txt").write_text("dataset 'gone' is unavailable\n")
    return root


def _expected_hr(path: Path, valid_side: int | None = None) -> np.ndarray:
    """What the store must hold for `path`, decoded independently of srpipe.data.images."""
    rgb = np.asarray(Image.open(path).convert("RGB"))  # gray → 3 equal channels, RGBA → alpha dropped
    if valid_side is not None:
        h, w = rgb.shape[:2]
        y, x = max(0, (h - valid_side) // 2), max(0, (w - valid_side) // 2)
        rgb = rgb[y : y + valid_side, x : x + valid_side]
    return modcrop(rgb, STEP)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_stores_have_the_documented_files(raw: Path, tmp_path: Path) -> None:
    summary = prepare(raw, tmp_path / "prepared", PARAMS, SCALES, progress=False)
    assert summary["train"] == {"images": 3, "patches": summary["train"]["patches"], "skipped": 1}
    assert summary["valid"]["images"] == 1
    for split in ("train", "valid"):
        folder = tmp_path / "prepared" / split
        assert {p.name for p in folder.iterdir()} == FILES
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["split"] == split and meta["scales"] == list(SCALES) and meta["format"] == 1
        assert meta["params"]["lr_patch"] == PARAMS.lr_patch
        images = pd.read_parquet(folder / "images.parquet")
        assert {"id", "name", "dataset", "height", "width", "gray", "hr_offset", "lr_x2_offset", "lr_x4_offset"} <= set(
            images.columns
        )
        assert meta["images"] == len(images) == summary[split]["images"]
        pixels = int((images.height * images.width * 3).sum())
        assert (folder / "hr.u8").stat().st_size == pixels
        for s in SCALES:
            assert (folder / f"lr_x{s}.u8").stat().st_size == pixels // (s * s)
        patches = pd.read_parquet(folder / "patches.parquet")
        assert list(patches.columns) == ["image_id", "scale", "y", "x", "size"]
        assert meta["patches"] == len(patches) == summary[split]["patches"]
    assert not list(tmp_path.glob(".prepared*")), "temporary folders left behind"


def test_lr_is_matlab_bicubic_of_the_modcropped_hr(raw: Path, tmp_path: Path) -> None:
    prepare(raw, tmp_path / "prepared", PARAMS, SCALES, progress=False)
    train = Store(tmp_path / "prepared" / "train")
    assert list(train.images["name"]) == ["a_rgb", "b_gray", "c_rgba"]
    assert list(train.images["gray"]) == [False, True, False]
    for i, name in enumerate(train.images["name"]):
        hr = _expected_hr(raw / "toy/train" / f"{name}.png")
        np.testing.assert_array_equal(train.hr(i), hr)
        for s in SCALES:
            np.testing.assert_array_equal(train.lr(i, s), bicubic_lr(hr, s)[1])
    valid = Store(tmp_path / "prepared" / "valid")
    hr = _expected_hr(raw / "toy/valid/v.png", PARAMS.max_valid_side)
    assert hr.shape == (64, 64, 3)
    np.testing.assert_array_equal(valid.hr(0), hr)
    np.testing.assert_array_equal(valid.lr(0, 4), bicubic_lr(hr, 4)[1])


def test_patch_windows_tile_every_lr_image(raw: Path, tmp_path: Path) -> None:
    prepare(raw, tmp_path / "prepared", PARAMS, SCALES, progress=False)
    store = Store(tmp_path / "prepared" / "train")
    for s in SCALES:
        index = store.patches(s)
        for i in range(len(store)):
            h, w = store.lr(i, s).shape[:2]
            rows = index[index[:, 0] == i]
            assert len(rows) and (rows[:, 3] == PARAMS.lr_patch).all()
            covered = np.zeros((h, w), bool)
            for _, y, x, size in rows:
                assert y >= 0 and y + size <= h and x >= 0 and x + size <= w
                covered[y : y + size, x : x + size] = True
            assert covered.all(), f"x{s} image {i}: the windows miss part of the image"


def test_two_runs_write_byte_identical_stores(raw: Path, tmp_path: Path) -> None:
    prepare(raw, tmp_path / "one", PARAMS, SCALES, progress=False)
    (tmp_path / "one" / "train" / "stale.u8").write_bytes(b"from an older run")
    prepare(raw, tmp_path / "one", PARAMS, SCALES, progress=False)  # a re-run replaces the whole folder
    prepare(raw, tmp_path / "two", PARAMS, SCALES, progress=False)
    one, two = _snapshot(tmp_path / "one"), _snapshot(tmp_path / "two")
    assert set(one) == {f"{split}/{f}" for split in ("train", "valid") for f in FILES}
    assert one == two


def test_image_smaller_than_the_patch_is_skipped_with_a_warning(
    raw: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="srpipe"):
        summary = prepare(raw, tmp_path / "prepared", PARAMS, SCALES, progress=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("d_tiny.png" in m and "smaller than the patch size" in m for m in warnings), warnings
    assert summary["train"]["skipped"] == 1
    meta = json.loads((tmp_path / "prepared/train/meta.json").read_text())
    assert [Path(p).name for p in meta["skipped"]] == ["d_tiny.png"]
    assert "d_tiny" not in set(Store(tmp_path / "prepared/train").images["name"])


def test_missing_and_unavailable_datasets_are_skipped_with_a_warning(
    raw: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="srpipe"):
        prepare(raw, tmp_path / "prepared", PARAMS, SCALES, progress=False)
    warnings = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "missing/train" in warnings and "gone/train" in warnings
    images = Store(tmp_path / "prepared/train").images
    assert set(images["dataset"]) == {"toy"}
    assert "should_not_appear" not in set(images["name"])


def test_empty_training_set_is_a_clear_error(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    _png(raw / "toy/train/small.png", 20, 20)
    _png(raw / "toy/valid/v.png", 80, 80)
    with pytest.raises(ValueError, match="train set is empty"):
        prepare(raw, tmp_path / "prepared", PARAMS, SCALES, progress=False)
    no_sources = PrepareParams(train=("missing/train",), valid=("toy/valid",), lr_patch=8)
    with pytest.raises(ValueError, match=r"no train images.*missing/train"):
        prepare(raw, tmp_path / "prepared", no_sources, SCALES, progress=False)
    assert not (tmp_path / "prepared").exists()
    assert not list(tmp_path.glob(".prepared*"))


def test_corrupt_png_names_the_file_and_keeps_the_previous_store(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    prepare(raw, out, PARAMS, SCALES, progress=False)
    before = _snapshot(out)
    good = (raw / "toy/train/a_rgb.png").read_bytes()
    (raw / "toy/train/b_broken.png").write_bytes(good[: len(good) // 2])  # a truncated download
    with pytest.raises(ImageError, match=r"b_broken\.png"):
        prepare(raw, out, PARAMS, SCALES, progress=False)
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared", "raw"], "temporary folders left behind"


def test_rescale_adds_downscaled_copies_made_with_matlab_bicubic(raw: Path, tmp_path: Path) -> None:
    """FSRCNN Sec. 4.1: each training image also downscaled by 0.9 … 0.6 before sub-images are cut. Each copy is
    MATLAB imresize of the decoded image (output ceil(h·f) × ceil(w·f)), then modcropped; validation gets none."""
    import torch

    from srpipe.degrade import imresize

    params = PrepareParams(train=("toy/train",), valid=("toy/valid",), lr_patch=8, stride=4, rescale=(0.9, 0.6))
    summary = prepare(raw, tmp_path / "prepared", params, SCALES, progress=False)
    store = Store(tmp_path / "prepared/train")
    images = store.images
    assert list(zip(images["name"], images["rescale"], strict=True)) == [
        ("a_rgb", 1.0), ("a_rgb", 0.9), ("a_rgb", 0.6),
        ("b_gray", 1.0), ("b_gray", 0.9),  # 45×52 × 0.6 = 27×32: LR x4 6 px < 8, skipped
        ("c_rgba", 1.0), ("c_rgba", 0.9),
    ]  # fmt: skip
    a = np.asarray(Image.open(raw / "toy/train/a_rgb.png").convert("RGB"))
    for i, factor in ((1, 0.9), (2, 0.6)):
        small = imresize(torch.from_numpy(a.copy()).permute(2, 0, 1), factor).permute(1, 2, 0).numpy()
        assert small.shape[:2] == (int(np.ceil(70 * factor)), int(np.ceil(90 * factor)))
        np.testing.assert_array_equal(store.hr(i), modcrop(small, STEP))
        np.testing.assert_array_equal(store.lr(i, 4), bicubic_lr(modcrop(small, STEP), 4)[1])
    assert summary["train"]["skipped"] == 5  # d_tiny at 1.0, 0.9, 0.6 and b_gray, c_rgba at 0.6, counted per copy
    assert list(Store(tmp_path / "prepared/valid").images["rescale"]) == [1.0]


@pytest.mark.parametrize("factor", [0.0, 1.0, 1.5, -0.5])
def test_rescale_factors_outside_zero_one_are_refused(factor: float) -> None:
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        PrepareParams(rescale=(0.9, factor))

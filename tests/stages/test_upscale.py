"""Stage `upscale` and `srpipe upscale`: outputs, keeping existing files, weight checks, bad inputs, gray, tiling."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srpipe.cli import main
from srpipe.data.images import ImageError
from srpipe.inference import super_resolve, to_uint8
from srpipe.models import create_model
from srpipe.stages.upscale import upscale
from srpipe.weights import WeightsCard, load_model, save_weights

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An srpipe weights file: EDSR tiny x2, random init (receptive field radius 8 LR px)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "edsr_x2.pt"
    card = WeightsCard(model="edsr", scale=2, config="tiny", color="rgb")
    save_weights(path, card, create_model("edsr", 2, "tiny").state_dict())
    return path


def _png(path: Path, height: int, width: int, mode: str = "RGB", seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    shape = (height, width) if mode == "L" else (height, width, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)
    return path


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    """(a folder with an RGB and a gray image, a single RGB file elsewhere)."""
    folder = tmp_path / "in"
    _png(folder / "rgb.png", 20, 28, seed=1)
    _png(folder / "gray.png", 18, 22, "L", seed=2)
    (folder / "notes.txt").write_text("not an image")
    return folder, _png(tmp_path / "single.png", 24, 16, seed=3)


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.array(img)


def test_folder_and_file_give_x2_pngs_of_the_model(inputs: tuple[Path, Path], weights: Path, tmp_path: Path) -> None:
    folder, single = inputs
    out = tmp_path / "out"
    result = upscale([folder, single], out, "edsr", weights=weights, device="cpu", progress=False)
    assert result["scale"] == 2 and result["kept"] == []
    assert sorted(p.name for p in out.iterdir()) == ["gray_x2.png", "rgb_x2.png", "single_x2.png"]
    assert sorted(result["written"]) == sorted(str(p) for p in out.iterdir())
    for name, (h, w) in {"rgb": (20, 28), "gray": (18, 22), "single": (24, 16)}.items():
        with Image.open(out / f"{name}_x2.png") as img:
            assert img.size == (2 * w, 2 * h)
    net, _ = load_model(weights)
    lr = torch.from_numpy(_pixels(folder / "rgb.png")).permute(2, 0, 1)[None]
    expected = to_uint8(super_resolve(net, lr, 2))[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(_pixels(out / "rgb_x2.png"), expected)


def test_gray_input_gives_gray_output(inputs: tuple[Path, Path], weights: Path, tmp_path: Path) -> None:
    folder, _ = inputs
    upscale([folder / "gray.png"], tmp_path / "out", "edsr", weights=weights, device="cpu", progress=False)
    with Image.open(tmp_path / "out" / "gray_x2.png") as out:
        assert out.mode == "L" and out.size == (44, 36)


def test_existing_outputs_are_kept_unless_overwrite(
    inputs: tuple[Path, Path], weights: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder, _ = inputs
    out = tmp_path / "out"
    existing = _png(out / "rgb_x2.png", 5, 5, seed=9)
    before = existing.read_bytes()
    os.utime(existing, (1_000_000_000, 1_000_000_000))
    with caplog.at_level(logging.WARNING, logger="srpipe"):
        result = upscale([folder], out, "edsr", weights=weights, device="cpu", progress=False)
    assert result["kept"] == [str(existing)] and str(existing) not in result["written"]
    assert existing.read_bytes() == before and existing.stat().st_mtime == 1_000_000_000
    assert "--overwrite" in caplog.text
    assert (out / "gray_x2.png").exists()
    result = upscale([folder], out, "edsr", weights=weights, device="cpu", overwrite=True, progress=False)
    with Image.open(existing) as img:
        assert str(existing) in result["written"] and img.size == (56, 40)


def test_weights_of_another_model_or_scale_are_refused(
    inputs: tuple[Path, Path], weights: Path, tmp_path: Path
) -> None:
    folder, _ = inputs
    with pytest.raises(ValueError, match=r"'edsr'.*'rcan'"):
        upscale([folder], tmp_path / "out", "rcan", weights=weights, device="cpu", progress=False)
    with pytest.raises(ValueError, match=r"edsr.*x2.*x4"):
        upscale([folder], tmp_path / "out", "edsr", weights=weights, scale=4, device="cpu", progress=False)
    assert not (tmp_path / "out").exists()


def test_files_that_are_not_srpipe_weights_are_refused(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    folder, _ = inputs
    plain = tmp_path / "plain_state_dict.pt"
    torch.save(create_model("edsr", 2, "tiny").state_dict(), plain)  # what a bare torch.save writes
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    for path, message in ((plain, "not an srpipe weights file"), (text, "not a readable weights file")):
        with pytest.raises(ValueError, match=message):
            upscale([folder], tmp_path / "out", "edsr", weights=path, device="cpu", progress=False)
    with pytest.raises(FileNotFoundError, match="no such weights file"):
        upscale([folder], tmp_path / "out", "edsr", weights=tmp_path / "absent.pt", device="cpu", progress=False)


def test_unreadable_input_is_named_and_the_others_are_written(weights: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    _png(folder / "a.png", 12, 12, seed=1)
    (folder / "b_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    _png(folder / "c.png", 12, 12, seed=2)
    with pytest.raises(ImageError, match=r"b_broken\.png"):
        upscale([folder], tmp_path / "out", "edsr", weights=weights, device="cpu", progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_x2.png", "c_x2.png"]


def test_tiled_output_equals_untiled(weights: Path, tmp_path: Path) -> None:
    src = _png(tmp_path / "big.png", 50, 70, seed=4)

    def run(folder: str, **tiling: int) -> np.ndarray:
        upscale([src], tmp_path / folder, "edsr", weights=weights, device="cpu", progress=False, **tiling)
        return _pixels(tmp_path / folder / "big_x2.png").astype(int)

    whole = run("whole")
    # Tiles of 32 LR px overlapping by 16 keep 8 px of context per side: the receptive-field radius of EDSR tiny.
    tiles = run("tiles", tile=32, overlap=16)
    assert whole.shape == tiles.shape == (100, 140, 3)
    assert np.abs(whole - tiles).max() <= 1  # equal up to a float-rounding tie
    seams = run("seams", tile=32, overlap=2)  # control: too little context shows at the seams
    assert np.abs(whole - seams).max() > 10


def test_cli_upscale_writes_files(inputs: tuple[Path, Path], weights: Path, tmp_path: Path) -> None:
    folder, single = inputs
    out = tmp_path / "out"
    argv = ["--params", str(tmp_path / "absent.yaml"), "upscale", str(folder), str(single)]
    argv += ["--model", "edsr", "--weights", str(weights), "--out", str(out), "--device", "cpu", "--no-progress"]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["gray_x2.png", "rgb_x2.png", "single_x2.png"]


def test_cli_upscale_bad_input_returns_2_with_a_message(
    inputs: tuple[Path, Path], weights: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, single = inputs

    def run(source: Path, model: str) -> int:
        argv = ["--params", str(tmp_path / "absent.yaml"), "upscale", str(source), "--model", model]
        argv += ["--weights", str(weights), "--out", str(tmp_path / "out"), "--device", "cpu", "--no-progress"]
        with caplog.at_level(logging.ERROR, logger="srpipe"):
            return main(argv)

    assert run(tmp_path / "no_such_photo.png", "edsr") == 2
    assert "no_such_photo.png" in caplog.text
    caplog.clear()
    assert run(single, "rcan") == 2
    assert "'edsr'" in caplog.text and "'rcan'" in caplog.text
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("overwrite", [False, True])
def test_inputs_sharing_a_stem_get_distinct_outputs(tmp_path: Path, overwrite: bool) -> None:
    # Before: all three were named x_x2.png; without --overwrite two were "kept" (never written) with exit 0,
    # with it they overwrote each other.
    sources = [_png(tmp_path / "a" / "x.png", 10, 12, seed=1), _png(tmp_path / "b" / "x.png", 10, 12, seed=2)]
    jpg = tmp_path / "a" / "x.jpg"
    Image.fromarray(np.full((10, 12, 3), 200, np.uint8)).save(jpg)
    single = _png(tmp_path / "c" / "y.png", 10, 12, seed=3)
    out = tmp_path / "out"
    args = dict(scale=2, device="cpu", progress=False, overwrite=overwrite)
    result = upscale([jpg, *sources, single, sources[0]], out, "bicubic", **args)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["a_x_jpg_x2.png", "a_x_png_x2.png", "b_x_png_x2.png", "y_x2.png"]  # unique stems keep their name
    assert result["kept"] == [] and len(result["written"]) == 4
    for src, name in ((sources[0], "a_x_png_x2.png"), (sources[1], "b_x_png_x2.png"), (jpg, "a_x_jpg_x2.png")):
        lr = torch.from_numpy(_pixels(src)).permute(2, 0, 1)[None]
        np.testing.assert_array_equal(
            _pixels(out / name), to_uint8(super_resolve(create_model("bicubic", 2), lr, 2))[0].permute(1, 2, 0).numpy()
        )


def test_an_output_that_cannot_be_written_fails_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import srpipe.stages.upscale as stage

    real = stage.save_png

    def disk_full(path: Path, *args: object, **kwargs: object) -> None:
        if path.name.startswith("b"):
            raise OSError(28, "No space left on device")
        real(path, *args, **kwargs)

    monkeypatch.setattr(stage, "save_png", disk_full)
    files = [_png(tmp_path / "in" / f"{n}.png", 8, 8, seed=i) for i, n in enumerate("abc")]
    with pytest.raises(ImageError, match=r"1 output\(s\) not written: .*b_x2\.png"):
        upscale(files, tmp_path / "out", "bicubic", scale=2, device="cpu", progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_x2.png", "c_x2.png"]

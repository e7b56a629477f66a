"""Stage `upscale` and `srpipe upscale`: outputs, keeping existing files, weight checks, bad inputs, gray, tiling, and
a large image under a memory cap (peak resident memory of the real command)."""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srpipe.cli import main
from srpipe.context import Context
from srpipe.data.images import ImageError, save_png
from srpipe.inference import super_resolve, to_uint8
from srpipe.memory import parse_size
from srpipe.models import create_model
from srpipe.stages.upscale import upscale
from srpipe.weights import WeightsCard, load_model, save_weights
from tests.conftest import synthetic_image

CPU = Context(device="cpu", progress=False)

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
    result = upscale([folder, single], out, "edsr", weights=weights, ctx=CPU, precision="fp32")
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
    upscale([folder / "gray.png"], tmp_path / "out", "edsr", weights=weights, ctx=CPU)
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
        result = upscale([folder], out, "edsr", weights=weights, ctx=CPU)
    assert result["kept"] == [str(existing)] and str(existing) not in result["written"]
    assert existing.read_bytes() == before and existing.stat().st_mtime == 1_000_000_000
    assert "--overwrite" in caplog.text
    assert (out / "gray_x2.png").exists()
    result = upscale([folder], out, "edsr", weights=weights, overwrite=True, ctx=CPU)
    with Image.open(existing) as img:
        assert str(existing) in result["written"] and img.size == (56, 40)


def test_weights_of_another_model_or_scale_are_refused(
    inputs: tuple[Path, Path], weights: Path, tmp_path: Path
) -> None:
    folder, _ = inputs
    with pytest.raises(ValueError, match=r"'edsr'.*'rcan'"):
        upscale([folder], tmp_path / "out", "rcan", weights=weights, ctx=CPU)
    with pytest.raises(ValueError, match=r"edsr.*x2.*x4"):
        upscale([folder], tmp_path / "out", "edsr", weights=weights, scale=4, ctx=CPU)
    assert not (tmp_path / "out").exists()


def test_files_that_are_not_srpipe_weights_are_refused(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    folder, _ = inputs
    plain = tmp_path / "plain_state_dict.pt"
    torch.save(create_model("edsr", 2, "tiny").state_dict(), plain)  # what a bare torch.save writes
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    for path, message in ((plain, "not an srpipe weights file"), (text, "not a readable weights file")):
        with pytest.raises(ValueError, match=message):
            upscale([folder], tmp_path / "out", "edsr", weights=path, ctx=CPU)
    with pytest.raises(FileNotFoundError, match="no such weights file"):
        upscale([folder], tmp_path / "out", "edsr", weights=tmp_path / "absent.pt", ctx=CPU)


def test_unreadable_input_is_named_and_the_others_are_written(weights: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    _png(folder / "a.png", 12, 12, seed=1)
    (folder / "b_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    _png(folder / "c.png", 12, 12, seed=2)
    with pytest.raises(ImageError, match=r"b_broken\.png"):
        upscale([folder], tmp_path / "out", "edsr", weights=weights, ctx=CPU)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_x2.png", "c_x2.png"]


def test_tiled_output_equals_untiled(weights: Path, tmp_path: Path) -> None:
    src = _png(tmp_path / "big.png", 50, 70, seed=4)

    def run(folder: str, **tiling: int) -> np.ndarray:
        upscale([src], tmp_path / folder, "edsr", weights=weights, ctx=CPU, **tiling)
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


def test_a_cap_too_small_for_the_result_is_a_one_line_error(
    inputs: tuple[Path, Path], weights: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, single = inputs
    argv = ["--params", str(tmp_path / "absent.yaml"), "upscale", str(single), "--model", "edsr"]
    argv += ["--weights", str(weights), "--out", str(tmp_path / "out"), "--device", "cpu", "--no-progress"]
    with caplog.at_level(logging.ERROR, logger="srpipe"):
        assert main([*argv, "--max-memory", "10MB"]) == 2  # less than this process holds already
    assert "10 MB memory cap: raise --max-memory" in caplog.text
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
    args = dict(scale=2, ctx=CPU, overwrite=overwrite)
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
        upscale(files, tmp_path / "out", "bicubic", scale=2, ctx=CPU)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_x2.png", "c_x2.png"]


# The child reports its own VmHWM (peak resident set of its address space) as it exits. Not the rusage of wait4: Linux
# carries ru_maxrss across fork and exec, so a child forked from a large pytest process inherits the parent's size.
_REPORT_PEAK = """
import atexit, sys
path = sys.argv[1]
atexit.register(lambda: open(path, 'w').write(
    next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]))
del sys.argv[1]
from srpipe.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _upscale_in_a_child(argv: list[str], timeout: float, report: Path) -> tuple[int, int, float]:
    """(exit status, peak resident bytes, seconds) of `srpipe ARGV` run as its own process; killed after `timeout`."""
    start = time.monotonic()
    child = subprocess.Popen([sys.executable, "-c", _REPORT_PEAK, str(report), *argv], stdout=subprocess.DEVNULL)
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    return child.returncode, int(report.read_text()) * 1024, time.monotonic() - start  # VmHWM is in kB


@pytest.mark.parametrize(
    ("width", "height", "scale", "cap", "timeout"),
    [
        (2000, 1500, 4, "1GB", 120),  # before: 2.0 GB, with or without --tile
        pytest.param(6000, 4000, 4, "2GB", 300, marks=pytest.mark.slow),  # issue 14: 13.9 GB before; ~30 s on 2 cores
    ],
)
def test_a_large_image_is_upscaled_under_the_memory_cap(
    tmp_path: Path, width: int, height: int, scale: int, cap: str, timeout: float
) -> None:

    torch.manual_seed(0)
    weights = tmp_path / f"espcn_x{scale}.pt"
    card = WeightsCard(model="espcn", scale=scale, config="tiny", color="rgb")
    save_weights(weights, card, create_model("espcn", scale, "tiny", channels=3).state_dict())
    src = tmp_path / "big.png"
    save_png(src, np.tile(synthetic_image(1, 500, 500), (height // 500 + 1, width // 500 + 1, 1))[:height, :width])
    out = tmp_path / "out"
    argv = ["--params", str(tmp_path / "absent.yaml"), "upscale", str(src), "--model", "espcn"]
    argv += ["--weights", str(weights), "--out", str(out), "--device", "cpu", "--no-progress", "--max-memory", cap]
    status, peak, seconds = _upscale_in_a_child(argv, timeout, tmp_path / "peak_kb")
    assert status == 0, f"srpipe upscale exited {status} after {seconds:.0f} s"
    assert peak < parse_size(cap), f"peak resident memory {peak / 1e9:.2f} GB over the {cap} cap"
    with open(out / f"big_x{scale}.png", "rb") as f:  # the PNG header: PIL would decode (and warn about) 384 Mpx
        assert struct.unpack(">II", f.read(24)[16:]) == (width * scale, height * scale)

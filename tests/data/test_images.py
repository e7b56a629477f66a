"""srpipe.data.images on the awkward files real datasets contain, each made on disk by the test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srpipe.data.images import ImageError, list_images, load_image, pixel_digest, save_png


def test_gray_becomes_three_equal_channels_flagged_gray(tmp_path: Path) -> None:
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(pixels, "L").save(tmp_path / "g.png")
    img = load_image(tmp_path / "g.png")
    assert img.gray and img.pixels.shape == (3, 4, 3) and img.pixels.dtype == np.uint8
    assert all(np.array_equal(img.pixels[:, :, c], pixels) for c in range(3))


def test_rgba_drops_alpha(tmp_path: Path) -> None:
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 0  # fully transparent red: the colour is kept, not composited
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert not img.gray and img.pixels.shape == (2, 2, 3) and (img.pixels[..., 0] == 200).all()


def test_sixteen_bit_png_is_rescaled_to_eight_bit(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 32896, 65535]], dtype=np.uint16)).save(tmp_path / "d.png")
    assert Image.open(tmp_path / "d.png").mode.startswith("I")  # really stored as 16-bit
    img = load_image(tmp_path / "d.png")
    assert img.gray and img.pixels[0, :, 0].tolist() == [0, 128, 255]


def test_palette_image_becomes_rgb(tmp_path: Path) -> None:
    im = Image.new("P", (3, 1))
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    im.putdata([0, 1, 2])
    im.save(tmp_path / "p.png")
    img = load_image(tmp_path / "p.png")
    assert not img.gray and img.pixels[0].tolist() == [[255, 0, 0], [0, 255, 0], [0, 0, 255]]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = np.zeros((2, 4, 3), np.uint8)
    pixels[0, 0] = 255  # a marker in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.fromarray(pixels).save(tmp_path / "o.png", exif=exif.tobytes())
    img = load_image(tmp_path / "o.png")
    assert img.size == (4, 2)  # (height, width): portrait after rotation
    assert (img.pixels[0, 1] == 255).all() and img.pixels.sum() == 255 * 3  # top-left moved to top-right


@pytest.mark.parametrize("damage", ["corrupt", "truncated"])
def test_broken_files_raise_image_error_naming_the_file(tmp_path: Path, damage: str) -> None:
    path = tmp_path / f"{damage}.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(b"definitely not a PNG" if damage == "corrupt" else data[: len(data) // 2])
    with pytest.raises(ImageError, match=f"{damage}\\.png"):
        load_image(path)


def test_missing_file_is_an_image_error(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.png")


def test_list_images_and_gray_round_trip(tmp_path: Path) -> None:
    pixels = np.full((3, 3, 3), 77, np.uint8)
    save_png(tmp_path / "b.png", pixels, gray=True)
    (tmp_path / "a.txt").write_text("skip")
    (tmp_path / ".hidden.png").write_bytes(b"")
    assert [p.name for p in list_images(tmp_path)] == ["b.png"]
    assert Image.open(tmp_path / "b.png").mode == "L" and load_image(tmp_path / "b.png").gray


@pytest.mark.parametrize(
    ("shape", "gray"), [((700, 4000, 3), False), ((700, 4000, 3), True), ((5, 7), False), ((1, 1, 3), False)]
)
def test_save_png_round_trips_across_bands(tmp_path: Path, shape: tuple[int, ...], gray: bool) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)  # 700 rows: 9 bands of ~1 MB
    save_png(tmp_path / "x.png", pixels[:, ::-1] if len(shape) == 3 else pixels, gray=gray)  # a strided view too
    expected = pixels[:, ::-1] if len(shape) == 3 else pixels
    with Image.open(tmp_path / "x.png") as img:
        assert img.mode == ("L" if gray or len(shape) == 2 else "RGB")
        np.testing.assert_array_equal(np.asarray(img), expected[:, :, 0] if gray else expected)


def test_save_png_streams_instead_of_copying_the_image(tmp_path: Path) -> None:
    import tracemalloc

    pixels = np.random.default_rng(2).integers(0, 256, (2000, 3000, 3), dtype=np.uint8)  # 18 MB
    tracemalloc.start()
    try:
        save_png(tmp_path / "big.png", pixels)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 6 * 2**20  # a 1-MB band and zlib's output for it, not PIL's 24-MB RGBX copy
    with pytest.raises(TypeError, match="uint8"):
        save_png(tmp_path / "f.png", pixels.astype(np.float32))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        save_png(tmp_path / "rgba.png", np.zeros((2, 2, 4), np.uint8))


def test_pixel_digest_follows_the_pixels_not_the_encoding(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(rgb).save(tmp_path / "a.bmp")
    Image.fromarray(rgb).save(tmp_path / "b.png", compress_level=0)
    assert pixel_digest(tmp_path / "a.png") == pixel_digest(tmp_path / "a.bmp") == pixel_digest(tmp_path / "b.png")
    changed = rgb.copy()
    changed[0, 0, 0] ^= 1
    Image.fromarray(changed).save(tmp_path / "c.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")  # R=G=B stored as RGB and as gray differ for metrics
    Image.fromarray(np.repeat(rgb[..., :1], 3, axis=2)).save(tmp_path / "rgb_gray.png")
    digests = {pixel_digest(tmp_path / n) for n in ("a.png", "c.png", "gray.png", "rgb_gray.png")}
    assert len(digests) == 4

"""The embedded `sample` dataset: scikit-image's own photographs, written offline without importing skimage."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srpipe.data import sample
from srpipe.data.sample import SPLITS, skimage_data_dir, write_sample
from srpipe.stages.download import download


def test_sample_dataset_through_the_stage(tmp_path: Path) -> None:
    summary = download(["sample"], tmp_path / "raw", progress=False)
    assert summary == {"sample": {"source": "embedded", "images": {"test": 4, "train": 8, "valid": 2}}}
    out = tmp_path / "raw" / "sample"
    assert sorted(p.name for p in (out / "test").iterdir()) == [
        "astronaut.png",
        "camera.png",
        "chelsea.png",
        "coffee.png",
    ]
    assert not set(SPLITS["train"]) & set(SPLITS["test"])
    assert not set(SPLITS["valid"]) & (set(SPLITS["train"]) | set(SPLITS["test"]))


def test_sample_images_keep_their_pixels_and_channels(tmp_path: Path) -> None:
    write_sample(tmp_path)
    data = skimage_data_dir()
    assert (tmp_path / "test" / "coffee.png").read_bytes() == (data / "coffee.png").read_bytes()  # PNG untouched
    rocket = np.asarray(Image.open(data / "rocket.jpg"))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "valid" / "rocket.png")), rocket)  # JPEG decoded once
    for gray in ("camera", "moon", "brick", "grass", "gravel"):
        split = next(k for k, names in SPLITS.items() if f"{gray}.png" in names)
        assert Image.open(tmp_path / split / f"{gray}.png").mode == "L"
    assert Image.open(tmp_path / "test" / "astronaut.png").mode == "RGB"


def test_writing_the_sample_does_not_import_skimage(tmp_path: Path) -> None:
    code = (
        "import sys; from srpipe.data.sample import write_sample; "
        f"write_sample({str(tmp_path)!r}); print('skimage' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "False"


def test_missing_scikit_image_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sample.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install scikit-image"):
        write_sample(tmp_path)
    fake = tmp_path / "skimage"
    (fake / "data").mkdir(parents=True)
    monkeypatch.setattr(sample, "skimage_data_dir", lambda: fake / "data")
    with pytest.raises(FileNotFoundError, match=r"rocket\.jpg"):
        write_sample(tmp_path / "out")

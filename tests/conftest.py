"""Shared fixtures: a small prepared patch store built from synthetic images, and the shared data folders."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def synthetic_image(seed: int, h: int, w: int) -> np.ndarray:
    """A learnable RGB image: smooth colour gradients, sinusoidal texture and a few hard edges."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for c in range(3):
        fy, fx, phase = [*rng.uniform(0.02, 0.3, 2).tolist(), rng.uniform(0, 6)]
        img[..., c] = 0.5 + 0.25 * np.sin(fy * y + fx * x + phase) + 0.2 * (x / w - 0.5) * (c - 1)
    for _ in range(4):
        y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
        img[y0 : y0 + h // 3, x0 : x0 + w // 3] = rng.uniform(0, 1, 3)
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def write_images(folder: Path, count: int, size: tuple[int, int], seed: int = 0) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(synthetic_image(seed + i, *size)).save(folder / f"img{i:02d}.png")


@pytest.fixture(scope="session")
def raw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = tmp_path_factory.mktemp("raw")
    write_images(raw / "synth" / "train", 6, (96, 128), seed=0)
    write_images(raw / "synth" / "valid", 2, (64, 64), seed=100)
    write_images(raw / "synth" / "test", 2, (72, 72), seed=200)
    return raw


@pytest.fixture(scope="session")
def store_dir(raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/prepared-like store at x2 and x4 (LR windows of 16 px)."""
    from srpipe.config import PrepareParams
    from srpipe.stages.prepare import prepare

    out = tmp_path_factory.mktemp("prepared") / "prepared"
    params = PrepareParams(train=("synth/train",), valid=("synth/valid",), lr_patch=16, stride=8, max_valid_side=64)
    prepare(raw_dir, out, params, (2, 4), progress=False)
    return out


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread for modules of many small ops, whose thread barriers cost more than the work."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared_benchmarks() -> Path:
    path = SHARED / "benchmarks"
    if not (path / "Set5").is_dir():
        pytest.skip(f"the shared benchmark images are not at {path}")
    return path

"""Training patches start at every offset of the image, also when a model's patch is as large as the prepare window
(DRN: a 96-px LR patch in 96-px windows laid every 48 px), and a model can learn from some of the store's datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srpipe.config import PrepareParams
from srpipe.data.store import PatchDataset, Store
from srpipe.stages.prepare import prepare

WINDOW, STRIDE, SCALE = 12, 5, 2


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("offsets")
    rng = np.random.default_rng(0)
    for dataset, name, (h, w) in (("A", "a", (60, 74)), ("B", "b", (52, 48))):
        folder = root / "raw" / dataset / "train"
        folder.mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    params = PrepareParams(train=("A/train", "B/train"), valid=("A/train",), lr_patch=WINDOW, stride=STRIDE)
    prepare(root / "raw", root / "prepared", params, (SCALE,), progress=False)
    return Store(root / "prepared" / "train")


def _starts(ds: PatchDataset, n: int) -> dict[int, tuple[set[int], set[int]]]:
    seen: dict[int, tuple[set[int], set[int]]] = {}
    for g in range(n):
        i, y, x, _ = ds.locate(g)
        ys, xs = seen.setdefault(i, (set(), set()))
        ys.add(y)
        xs.add(x)
    return seen


@pytest.mark.parametrize("lr_patch", [WINDOW, WINDOW - 1, 4])
def test_every_offset_is_drawn_even_when_the_patch_fills_the_window(store: Store, lr_patch: int) -> None:
    ds = PatchDataset(store, SCALE, lr_patch * SCALE, augment=False, seed=0)
    seen = _starts(ds, 6000)
    assert set(seen) == {0, 1}
    for i, (ys, xs) in seen.items():
        h, w = store.lr(i, SCALE).shape[:2]
        assert ys == set(range(h - lr_patch + 1)), f"image {i}: y starts {sorted(set(range(h - lr_patch + 1)) - ys)}"
        assert xs == set(range(w - lr_patch + 1)), f"image {i}: x starts {sorted(set(range(w - lr_patch + 1)) - xs)}"
    if lr_patch == WINDOW:  # the grid alone (what crops inside their window reach) misses most offsets
        grid = set(store.patches(SCALE)[:, 1])
        assert len(grid) < len(seen[0][0]) / 2


def test_a_model_learns_from_the_datasets_it_names(store: Store) -> None:
    only_b = PatchDataset(store, SCALE, 8 * SCALE, augment=False, datasets=("B",))
    assert set(_starts(only_b, 200)) == {1}
    both = PatchDataset(store, SCALE, 8 * SCALE, augment=False, datasets=("A", "B"))
    assert set(_starts(both, 200)) == {0, 1}
    with pytest.raises(ValueError, match=r"holds no \['Flickr2K'\] images"):
        PatchDataset(store, SCALE, 8 * SCALE, datasets=("Flickr2K",))


def test_paper_profile_trains_drn_on_df2k_and_the_others_on_div2k() -> None:
    from srpipe.config import load_params
    from srpipe.train.spec import resolve

    p = load_params(Path(__file__).resolve().parents[2] / "params-paper.yaml")
    assert "Flickr2K" in p.data.datasets and "Flickr2K/train" in p.prepare.train
    assert resolve("drn_s", 4, p.train).datasets == resolve("drn_l", 4, p.train).datasets == ("DIV2K", "Flickr2K")
    assert resolve("edsr", 2, p.train).datasets == ("DIV2K",)
    # DRN's 384-px HR patch at x4 is the whole 96-px prepare window: the case the offsets above are about.
    assert resolve("drn_s", 4, p.train).hr_patch // 4 == p.prepare.lr_patch

"""The patch store's dataset: aligned pairs, the exact bicubic-input margin trick, Y mode, a pure-function stream,
worker- and rank-independent batches, resumption, clear errors, and digests that refuse a damaged store."""

from __future__ import annotations

import json
import logging
import pathlib
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from srpipe.color import rgb_to_y
from srpipe.config import PrepareParams
from srpipe.data.store import PatchDataset, StepSampler, Store
from srpipe.degrade import imresize
from srpipe.integrity import CorruptDataError, file_digest
from srpipe.stages.prepare import prepare

SCALES = (2, 3, 4)
LR_PATCH = 12  # LR side of the index windows


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A prepared train store of three synthetic images (one gray, sizes that need modcropping)."""
    root = tmp_path_factory.mktemp("store")
    rng = np.random.default_rng(0)
    for name, (h, w), gray in (("a", (74, 99), False), ("b", (61, 50), True), ("c", (85, 62), False)):
        coarse = rng.integers(0, 256, (h // 6 + 2, w // 6 + 2, 3), dtype=np.uint8)
        img = Image.fromarray(coarse).resize((w, h), Image.BICUBIC)
        arr = np.asarray(img) ^ rng.integers(0, 16, (h, w, 3), dtype=np.uint8)
        for split in ("train", "valid"):
            folder = root / "raw" / "toy" / split
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr[..., 0] if gray else arr).save(folder / f"{name}.png")
    params = PrepareParams(train=("toy/train",), valid=("toy/valid",), lr_patch=LR_PATCH, stride=5)
    prepare(root / "raw", root / "prepared", params, SCALES, progress=False)
    return Store(root / "prepared" / "train")


def _chw(a: np.ndarray) -> torch.Tensor:
    """H×W×3 uint8 → 3×H×W float in [0, 1], written out here rather than borrowed from srpipe."""
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float() / 255.0


def _augment(a: np.ndarray, flips: tuple[bool, bool, bool]) -> np.ndarray:
    """flip_h mirrors left-right, flip_v top-bottom, then transpose swaps rows and columns."""
    flip_h, flip_v, transpose = flips
    if flip_h:
        a = a[:, ::-1]
    if flip_v:
        a = a[::-1]
    if transpose:
        a = a.transpose(1, 0, 2)
    return a


@pytest.mark.parametrize("augment", [True, False], ids=["augment", "plain"])
@pytest.mark.parametrize("scale", SCALES)
def test_pairs_are_the_crops_at_their_location(store: Store, scale: int, augment: bool) -> None:
    p = 8
    ds = PatchDataset(store, scale, hr_patch=p * scale, augment=augment, seed=3)
    seen_flips = set()
    for g in range(40):
        i, y, x, flips = ds.locate(g)
        seen_flips.add(flips)
        lr = store.lr(i, scale)[y : y + p, x : x + p]
        hr = store.hr(i)[y * scale : (y + p) * scale, x * scale : (x + p) * scale]
        assert lr.shape == (p, p, 3) and hr.shape == (p * scale, p * scale, 3), "location outside the image"
        inp, target = ds[g]
        assert inp.shape == (3, p, p) and target.shape == (3, p * scale, p * scale)
        assert torch.equal(inp, _chw(_augment(lr, flips)))
        assert torch.equal(target, _chw(_augment(hr, flips)))
    if augment:
        assert len(seen_flips) == 8, f"40 samples used only {len(seen_flips)} of the 8 flips/transposes"
    else:
        assert seen_flips == {(False, False, False)}


@pytest.mark.parametrize("scale", SCALES)
def test_bicubic_input_is_exactly_the_crop_of_the_upsampled_image(store: Store, scale: int) -> None:
    p = 8
    ds = PatchDataset(store, scale, hr_patch=p * scale, bicubic_input=True, augment=False)
    ups = [imresize(torch.from_numpy(np.array(store.lr(i, scale))).permute(2, 0, 1), float(scale)) for i in range(3)]
    # Cover every border (where the window's symmetric padding must equal the image's) and the interior.
    wanted = {"top", "bottom", "left", "right", "interior"}
    checked = set()
    for g in range(3000):
        i, y, x, _ = ds.locate(g)
        h, w = store.lr(i, scale).shape[:2]
        where = {"top": y == 0, "bottom": y + p == h, "left": x == 0, "right": x + p == w}
        kinds = {k for k, hit in where.items() if hit} or {"interior"}
        if kinds <= checked:
            continue
        inp, target = ds[g]
        assert inp.shape == target.shape == (3, p * scale, p * scale)
        crop = ups[i][:, y * scale : (y + p) * scale, x * scale : (x + p) * scale]
        assert torch.equal(inp, crop.float() / 255.0), f"sample {g} ({kinds}) differs from the upsampled image"
        hr = store.hr(i)[y * scale : (y + p) * scale, x * scale : (x + p) * scale]
        assert torch.equal(target, _chw(hr))
        checked |= kinds
        if checked == wanted:
            break
    assert checked == wanted


def test_y_mode_returns_bt601_luma(store: Store) -> None:
    y_ds = PatchDataset(store, 2, hr_patch=16, color="y", seed=1)
    rgb_ds = PatchDataset(store, 2, hr_patch=16, color="rgb", seed=1)
    weights = torch.tensor([65.481, 128.553, 24.966]).view(3, 1, 1)
    for g in range(10):
        (y_in, y_hr), (rgb_in, rgb_hr) = y_ds[g], rgb_ds[g]
        assert y_in.shape == (1, 8, 8) and y_hr.shape == (1, 16, 16)
        for y, rgb in ((y_in, rgb_in), (y_hr, rgb_hr)):
            luma = (16.0 + (weights * rgb).sum(0, keepdim=True)) / 255.0
            torch.testing.assert_close(y, luma, atol=1e-6, rtol=0)


def test_stream_is_a_pure_function_of_the_sample_number(store: Store) -> None:
    a = PatchDataset(store, 4, hr_patch=32, seed=7)
    b = PatchDataset(store, 4, hr_patch=32, seed=7)
    numbers = [0, 1, 17, 10**6, 2**40]
    forward = [a[g] for g in numbers]
    backward = [b[g] for g in reversed(numbers)][::-1]  # another order, another instance
    for (x1, y1), (x2, y2) in zip(forward, backward):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    other = PatchDataset(store, 4, hr_patch=32, seed=8)
    assert [other.locate(g) for g in range(20)] != [a.locate(g) for g in range(20)]
    assert not all(torch.equal(other[g][1], a[g][1]) for g in range(5))


@pytest.mark.parametrize("color", ["rgb", "y"])
@pytest.mark.parametrize("bicubic_input", [False, True])
def test_a_batched_fetch_equals_sample_by_sample(store: Store, color: str, bicubic_input: bool) -> None:
    # The DataLoader fetches a batch through __getitems__ (one colour conversion for all); the stream must not change.
    # (Bit for bit on this VM; 1e-6, far below a grey level's 1/255, keeps the test off the BLAS's summation order.)
    ds = PatchDataset(store, 2, hr_patch=16, color=color, bicubic_input=bicubic_input, seed=4)
    numbers = list(range(40, 72))
    batch = ds.__getitems__(numbers)
    assert {ds.locate(g)[3] for g in numbers} >= {(True, False, True), (False, True, False)}  # flips/rotations seen
    for g, (inp, hr) in zip(numbers, batch, strict=True):
        one_inp, one_hr = ds[g]
        torch.testing.assert_close(inp, one_inp, atol=1e-6, rtol=0)
        torch.testing.assert_close(hr, one_hr, atol=1e-6, rtol=0)
        image_id, y, x, (flip_h, flip_v, rot) = ds.locate(g)
        ref = store.hr(image_id)[y * 2 : (y + 8) * 2, x * 2 : (x + 8) * 2]
        ref = _chw(ref) if color == "rgb" else rgb_to_y(_chw(ref))
        ref = ref.flip([d for d, f in ((-1, flip_h), (-2, flip_v)) if f]) if flip_h or flip_v else ref
        torch.testing.assert_close(hr, ref.transpose(-1, -2) if rot else ref, atol=1e-6, rtol=0)


def _batches(ds: PatchDataset, sampler: StepSampler, workers: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader = DataLoader(ds, batch_size=sampler.batch, sampler=sampler, num_workers=workers)
    return list(loader)


def test_workers_yield_the_batches_of_the_main_process(store: Store) -> None:
    ds = PatchDataset(store, 3, hr_patch=24, seed=5)
    single = _batches(ds, StepSampler(0, 4, 4), workers=0)
    parallel = _batches(ds, StepSampler(0, 4, 4), workers=2)
    assert len(single) == len(parallel) == 4
    for (x1, y1), (x2, y2) in zip(single, parallel):
        assert x1.shape == (4, 3, 8, 8) and y1.shape == (4, 3, 24, 24)
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    resumed = _batches(ds, StepSampler(2, 4, 4), workers=0)  # resuming at step 2 sees the same last two batches
    for (x1, y1), (x2, y2) in zip(single[2:], resumed, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_step_sampler_ranks_are_disjoint_and_cover_the_global_batch() -> None:
    batch, steps = 4, 6
    ranks = [list(StepSampler(0, steps, batch, rank=r, world=2)) for r in range(2)]
    assert all(len(r) == steps * batch for r in ranks)
    assert not set(ranks[0]) & set(ranks[1])
    for step in range(steps):
        per_rank = [set(r[step * batch : (step + 1) * batch]) for r in ranks]
        single = set(StepSampler(step, step + 1, 2 * batch))  # one process with the same global batch
        assert per_rank[0] | per_rank[1] == single


@pytest.mark.parametrize("world", [1, 2])
def test_step_sampler_resumes_with_the_suffix(world: int) -> None:
    for rank in range(world):
        full = list(StepSampler(0, 10, 4, rank, world))
        resumed = StepSampler(3, 10, 4, rank, world)
        assert len(resumed) == 28
        assert list(resumed) == full[12:]


def test_bad_patch_sizes_and_scales_are_clear_errors(store: Store) -> None:
    with pytest.raises(ValueError, match="no index patch holds a 13-px LR patch"):
        PatchDataset(store, 2, hr_patch=2 * (LR_PATCH + 1))
    with pytest.raises(ValueError, match="not a multiple of x3"):
        PatchDataset(store, 3, hr_patch=32)
    with pytest.raises(ValueError, match=r"not x8"):
        PatchDataset(store, 8, hr_patch=64)


def test_a_folder_that_is_not_a_store_is_a_clear_error(store: Store) -> None:
    with pytest.raises(FileNotFoundError, match="srpipe prepare"):
        Store(store.root.parent)


def test_a_corrupt_store_is_an_error_naming_its_file(tmp_path: pathlib.Path) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "meta.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"train/meta\.json: unreadable .*srpipe prepare"):
        Store(tmp_path / "train")


def _copy(store: Store, tmp_path: pathlib.Path) -> pathlib.Path:
    """A private copy of the module's store, to damage."""
    return pathlib.Path(shutil.copytree(store.root, tmp_path / "prepared" / "train"))


def test_prepare_records_every_file_digest(store: Store) -> None:
    digests = store.meta["digests"]
    assert set(digests) == {"hr.u8", "lr_x2.u8", "lr_x3.u8", "lr_x4.u8", "images.parquet", "patches.parquet"}
    assert all(file_digest(store.root / name) == d for name, d in digests.items())


def test_inverted_hr_pixels_are_refused_naming_the_file_and_prepare(store: Store, tmp_path: pathlib.Path) -> None:
    # Issue 14 item 4b: half of hr.u8 inverted trained to 10.4 dB with exit status 0.
    root = _copy(store, tmp_path)
    hr = bytearray((root / "hr.u8").read_bytes())
    hr[len(hr) // 2 :] = bytes(255 - b for b in hr[len(hr) // 2 :])
    (root / "hr.u8").write_bytes(bytes(hr))
    with pytest.raises(CorruptDataError, match=r"train/hr\.u8: the patch store is corrupt.*`srpipe prepare`"):
        Store(root)


def test_a_missing_array_file_is_refused(store: Store, tmp_path: pathlib.Path) -> None:
    root = _copy(store, tmp_path)
    (root / "lr_x3.u8").unlink()
    with pytest.raises(CorruptDataError, match=r"lr_x3\.u8: the patch store is corrupt \(the file is missing"):
        Store(root)


def test_a_store_without_digests_opens_with_a_warning(store: Store, tmp_path: pathlib.Path, caplog) -> None:
    root = _copy(store, tmp_path)
    meta = json.loads((root / "meta.json").read_text())
    del meta["digests"]  # as `prepare` wrote it before digests existed
    (root / "meta.json").write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING, logger="srpipe.data.store"):
        assert len(Store(root)) == len(store)
    assert "opened unverified" in caplog.text and str(root) in caplog.text


def test_downscaled_copies_are_drawn_only_by_a_recipe_naming_their_factor(tmp_path: pathlib.Path) -> None:
    root = tmp_path
    rng = np.random.default_rng(1)
    for name in ("a", "b"):
        folder = root / "raw" / "toy" / "train"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    params = PrepareParams(train=("toy/train",), valid=("toy/train",), lr_patch=12, stride=6, rescale=(0.8, 0.6))
    prepare(root / "raw", root / "prepared", params, (2,), progress=False)
    store = Store(root / "prepared" / "train")
    factors = dict(zip(range(len(store)), store.rescale_factors(), strict=True))

    def drawn(**kw: object) -> set[float]:
        ds = PatchDataset(store, 2, 16, **kw)
        return {float(factors[int(i)]) for i in ds.index[:, 0]}

    assert drawn() == {1.0}  # SRCNN, ESPCN: the images themselves only
    assert drawn(rescale=(0.8,)) == {1.0, 0.8}
    assert drawn(rescale=(0.9, 0.8, 0.7, 0.6)) == {1.0, 0.8, 0.6}  # FSRCNN's four, of which the store holds two
    assert drawn(rescale=(0.6,), datasets=("toy",)) == {1.0, 0.6}

"""The patch store: training images decoded once into flat uint8 memmaps, with a Parquet index of patches.

Layout of a store folder (the contract between `prepare` and `train`, nanoGPT's train.bin + meta idea):
    hr.u8            every HR image (modcropped), H×W×3 uint8, back to back
    lr_x<s>.u8       the same images degraded with MATLAB bicubic at each scale
    images.parquet   id, name, dataset, rescale, height, width, gray, hr_offset, lr_x<s>_offset (rescale: 1 for
                     the image itself, f for its copy downscaled by f, `prepare.rescale`)
    patches.parquet  image_id, scale, y, x, size: LR-pixel windows on a grid, where training draws its patches (a
                     crop starts inside its window or within a stride after it, so every image offset is drawn)
    meta.json        format version, scales, counts, the params that made it and each file's sha256 (`digests`),
                     checked when the store is opened: a damaged byte stops training instead of teaching it noise
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from srpipe.color import rgb_to_y
from srpipe.degrade import imresize
from srpipe.integrity import CorruptDataError, file_digest

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_MARGIN = 3  # LR pixels of context so a bicubic-upsampled crop equals the crop of the upsampled image


@dataclass(frozen=True)
class StoredImage:
    name: str
    hr: np.ndarray  # H×W×3 uint8 (a memmap view)
    lr: np.ndarray  # h×w×3 uint8
    gray: bool


class Store:
    """Read access to a prepared store folder; arrays are memory-mapped, nothing is decoded."""

    def __init__(self, root: str | Path) -> None:
        import pandas as pd

        self.root = Path(root)
        meta_path = self.root / "meta.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"{self.root}: not a prepared patch store (no meta.json); run `srpipe prepare`")
        try:
            self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValueError(f"{meta_path}: unreadable ({e}); rebuild the store with `srpipe prepare`") from None
        if self.meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"{self.root}: store format {self.meta.get('format')}, expected {FORMAT_VERSION}")
        self._verify()
        self.images = pd.read_parquet(self.root / "images.parquet")
        self.scales = tuple(self.meta["scales"])
        self._maps: dict[str, np.memmap] = {}
        # Sizes and offsets as plain ints: a pandas row lookup per patch cost more than the crop (FSRCNN's loop
        # spent half its time in `iloc`).
        geometry = [c for c in self.images.columns if c in ("height", "width", "hr_offset") or c.startswith("lr_x")]
        self._geom = {c: self.images[c].to_numpy(np.int64).tolist() for c in geometry}

    def _verify(self) -> None:
        """Check every file against the sha256 `prepare` recorded (stores from before digests open with a warning).

        One read of each file (about 1.4 GB/s; hashed once per process while its size and mtime stay the same): it
        also warms the page cache the memmaps read from.
        """
        digests = self.meta.get("digests")
        if not digests:
            log.warning("%s: a store from before digests: opened unverified (`srpipe prepare` adds them)", self.root)
            return
        for name, expected in digests.items():
            path = self.root / name
            if not path.is_file():
                problem = "the file is missing"
            elif (actual := file_digest(path)) != expected:
                problem = f"{actual[:19]}… where `prepare` recorded {expected[:19]}…"
            else:
                continue
            raise CorruptDataError(
                f"{path}: the patch store is corrupt ({problem}); rebuild it with `srpipe prepare` (or "
                f"`dvc checkout {self.root.parent}` / `dvc repro prepare` where DVC tracks it)"
            )

    def _map(self, name: str) -> np.memmap:
        # Opened lazily: each DataLoader worker maps the files itself after fork/spawn.
        if name not in self._maps:
            self._maps[name] = np.memmap(self.root / f"{name}.u8", dtype=np.uint8, mode="r")
        return self._maps[name]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_maps": {}}

    def __len__(self) -> int:
        return len(self.images)

    def _check_scale(self, scale: int) -> None:
        if scale not in self.scales:
            raise ValueError(f"{self.root} holds scales {self.scales}, not x{scale}: add it to prepare.scales")

    def hr(self, i: int) -> np.ndarray:
        g = self._geom
        h, w, off = g["height"][i], g["width"][i], g["hr_offset"][i]
        return self._map("hr")[off : off + h * w * 3].reshape(h, w, 3)

    def lr(self, i: int, scale: int) -> np.ndarray:
        self._check_scale(scale)
        g = self._geom
        h, w, off = g["height"][i] // scale, g["width"][i] // scale, g[f"lr_x{scale}_offset"][i]
        return self._map(f"lr_x{scale}")[off : off + h * w * 3].reshape(h, w, 3)

    def image(self, i: int, scale: int) -> StoredImage:
        row = self.images.iloc[i]
        return StoredImage(str(row["name"]), self.hr(i), self.lr(i, scale), bool(row.gray))

    def rescale_factors(self) -> np.ndarray:
        """Per image, the factor its HR was downscaled by in `prepare` (1.0 for every image of an older store)."""
        if "rescale" not in self.images:
            return np.ones(len(self.images))
        return self.images["rescale"].to_numpy(np.float64)

    def copies(self, wanted: Sequence[float]) -> list[float]:
        """The factors among `wanted` whose downscaled copies this store holds (factors compared to 6 decimals)."""
        held = set(np.round(self.rescale_factors(), 6).tolist())
        return [f for f in wanted if round(float(f), 6) in held]

    def patches(self, scale: int) -> np.ndarray:
        """Index rows for `scale` as an N×4 int array: image_id, y, x, size (LR pixels)."""
        import pandas as pd

        self._check_scale(scale)
        df = pd.read_parquet(self.root / "patches.parquet", filters=[("scale", "==", scale)])
        return df[["image_id", "y", "x", "size"]].to_numpy(np.int64)


def to_tensor(img: np.ndarray, color: str) -> Tensor:
    """…×H×W×3 uint8 → …×C×H×W float in [0, 1]; "y" gives BT.601 luma/255 (range 16/255..235/255)."""
    t = torch.from_numpy(np.ascontiguousarray(img)).movedim(-1, -3).float() / 255.0
    return rgb_to_y(t) if color == "y" else t


class PatchDataset(Dataset):
    """Aligned (input, HR) patch pairs sampled from a store, with random flips and 90° rotations.

    Sample `g` is drawn with an RNG seeded by (seed, g), so the stream is a pure function of the sample number:
    resuming at step k reproduces exactly the batches an uninterrupted run would have seen.
    """

    def __init__(
        self,
        store: Store,
        scale: int,
        hr_patch: int,
        color: str = "rgb",
        bicubic_input: bool = False,
        augment: bool = True,
        seed: int = 0,
        datasets: Sequence[str] = (),
        rescale: Sequence[float] = (),
    ) -> None:
        if hr_patch % scale:
            raise ValueError(f"HR patch {hr_patch} is not a multiple of x{scale}")
        self.store, self.scale, self.p = store, scale, hr_patch // scale
        self.color, self.bicubic_input, self.augment, self.seed = color, bicubic_input, augment, seed
        self.index = store.patches(scale)
        self.index = self.index[self.index[:, 3] >= self.p]
        if datasets:  # only these datasets' images (DRN learns from DIV2K + Flickr2K, EDSR from DIV2K alone)
            names = store.images["dataset"].to_numpy()
            if missing := sorted(set(datasets) - set(names)):
                raise ValueError(f"{store.root} holds no {missing} images (it holds {sorted(set(names))})")
            self.index = self.index[np.isin(names[self.index[:, 0]], list(datasets))]
        # The downscaled copies `prepare.rescale` made are drawn only by a recipe that names their factor (FSRCNN).
        keep = np.isin(np.round(store.rescale_factors(), 6), np.round([1.0, *store.copies(rescale)], 6))
        self.index = self.index[keep[self.index[:, 0]]]
        if len(self.index) == 0:
            raise ValueError(
                f"{store.root}: no index patch holds a {self.p}-px LR patch at x{scale}; "
                f"raise prepare.lr_patch or lower the model's patch size"
            )
        # A crop may start up to one stride past its window's own start range (staying inside the image), so the
        # starts of neighbouring windows' crops meet: every offset of the image is drawn, even when the patch is as
        # large as the window (DRN's 96-px LR patch in 96-px windows would otherwise sit on the 48-px grid only).
        self.stride = int(store.meta.get("params", {}).get("stride", 1))
        lr_h = store.images["height"].to_numpy(np.int64) // scale
        lr_w = store.images["width"].to_numpy(np.int64) // scale
        ids = self.index[:, 0]
        self.max_y, self.max_x = lr_h[ids] - self.p, lr_w[ids] - self.p  # the last valid crop start per window

    def __len__(self) -> int:
        return 2**62  # an endless stream, addressed by sample number

    def _crop(self, image_id: int, y: int, x: int) -> tuple[np.ndarray, np.ndarray]:
        s, p = self.scale, self.p
        hr = self.store.hr(image_id)[y * s : (y + p) * s, x * s : (x + p) * s]
        lr_full = self.store.lr(image_id, s)
        if not self.bicubic_input:
            return lr_full[y : y + p, x : x + p], hr
        # Upsample a window with context, then cut the patch out: identical to cropping the upsampled image.
        h, w = lr_full.shape[:2]
        y0, x0 = max(0, y - _MARGIN), max(0, x - _MARGIN)
        y1, x1 = min(h, y + p + _MARGIN), min(w, x + p + _MARGIN)
        win = torch.from_numpy(np.ascontiguousarray(lr_full[y0:y1, x0:x1])).permute(2, 0, 1)
        up = imresize(win, float(s)).permute(1, 2, 0).numpy()
        oy, ox = (y - y0) * s, (x - x0) * s
        return up[oy : oy + p * s, ox : ox + p * s], hr

    def locate(self, g: int) -> tuple[int, int, int, tuple[bool, bool, bool]]:
        """Where sample `g` comes from: image id, LR top-left (y, x), and (flip_h, flip_v, transpose)."""
        rng = np.random.default_rng((self.seed, g))
        row = rng.integers(len(self.index))
        image_id, y, x, size = self.index[row]
        span = max(size - self.p, self.stride - 1)  # inside the window, or into the stride that follows it
        y += rng.integers(min(span, self.max_y[row] - y) + 1)
        x += rng.integers(min(span, self.max_x[row] - x) + 1)
        flips = tuple(bool(f) for f in rng.integers(2, size=3)) if self.augment else (False, False, False)
        return int(image_id), int(y), int(x), flips

    def __getitem__(self, g: int) -> tuple[Tensor, Tensor]:
        return self.__getitems__([g])[0]

    def __getitems__(self, gs: Sequence[int]) -> list[tuple[Tensor, Tensor]]:
        """Samples `gs` (the DataLoader's batched fetch): crops and flips on the stored arrays, then one colour
        conversion for the whole batch — converting sample by sample cost ~3 ms a batch of 32, a third of a small
        model's (FSRCNN's, ESPCN's) training step on 2 cores."""
        pairs = [self._sample(g) for g in gs]
        inp = to_tensor(np.stack([p[0] for p in pairs]), self.color)
        hr = to_tensor(np.stack([p[1] for p in pairs]), self.color)
        return list(zip(inp, hr, strict=True))

    def _sample(self, g: int) -> tuple[np.ndarray, np.ndarray]:
        image_id, y, x, (flip_h, flip_v, rot) = self.locate(g)
        pair = self._crop(image_id, y, x)  # H×W×C
        if flip_h:
            pair = tuple(a[:, ::-1] for a in pair)
        if flip_v:
            pair = tuple(a[::-1] for a in pair)
        if rot:
            pair = tuple(a.transpose(1, 0, 2) for a in pair)
        return pair


class StepSampler(Sampler[int]):
    """Sample numbers for steps `start`..`stop` of `batch` samples, split over `world` ranks (DDP).

    Plays the role of DistributedSampler for an endless stream: rank r of w takes sample (step·batch + b)·w + r, so
    the ranks see disjoint samples, and resuming at a step needs no saved sampler state.
    """

    def __init__(self, start: int, stop: int, batch: int, rank: int = 0, world: int = 1) -> None:
        self.start, self.stop, self.batch, self.rank, self.world = start, stop, batch, rank, world

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start, self.stop):
            for b in range(self.batch):
                yield (step * self.batch + b) * self.world + self.rank

    def __len__(self) -> int:
        return max(0, self.stop - self.start) * self.batch


def grid(length: int, size: int, stride: int) -> list[int]:
    """Window starts covering [0, length) with windows of `size` every `stride`, the last one flush with the end."""
    if length < size:
        return []
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts


def lcm(values: tuple[int, ...]) -> int:
    return math.lcm(*values) if values else 1

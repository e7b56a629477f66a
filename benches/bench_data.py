"""Training-batch sampling rate: srpipe's patch store (PatchDataset + DataLoader) against decoding a PNG per sample,
and srpipe's batched fetch against fetching the same samples one by one.

Usage: python benches/bench_data.py [--batches 60] [--threads N]

Both sides produce the same kind of batch, with the settings training uses: 16 pairs of a 96² HR patch and its 24²
x4 LR patch, random flips/transposes, fed through a DataLoader over a StepSampler (prefetch 4 with workers). The
naive side opens a random training PNG with PIL for every sample, crops it and bicubic-downsamples the crop with PIL;
srpipe slices memory-mapped arrays that `prepare` decoded once. Workers: what `srpipe.train.loop._workers` picks for
this machine (CPU training), and also 0 and 2. Data: T91 fetched from the shared mirror into a temporary folder and
prepared there (the offline `sample` set where the mirror is absent). The ratio is srpipe / naive batches/s.

Second table: the trainings of the repro profile (params-repro.yaml: SRCNN/FSRCNN/ESPCN at x3 on Y, each with the patch
and batch it trains with), workers 0 as CPU training uses on 2 cores, so every millisecond of fetching is a
millisecond of the step.
The DataLoader fetches a batch through `PatchDataset.__getitems__` (one colour conversion for the batch); the
reference fetches the identical samples one at a time (`dataset[g]`, one conversion per sample), and the bench
checks that both give the same tensors bit for bit.
"""

from __future__ import annotations

import argparse
import logging
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _report import ROOT, SHARED, environment, save, table
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from srpipe.config import PrepareParams, TrainParams, load_params
from srpipe.data.images import list_images
from srpipe.data.store import PatchDataset, StepSampler, Store
from srpipe.stages.download import download
from srpipe.stages.prepare import prepare
from srpipe.train.loop import _workers
from srpipe.train.spec import RunSpec, resolve

SCALE, HR_PATCH, BATCH = 4, 96, 16
# The repro profile's small Y-channel networks (their scale, patch, batch and colour come from its trainings).
REPRO = load_params(ROOT / "params-repro.yaml")
SMALL = [resolve(m, s, REPRO.train) for s in REPRO.pipeline.scales for m in REPRO.pipeline.models]


class PngPatches(Dataset):
    """The naive loader: decode a random PNG per sample, crop, downsample with PIL's bicubic, flip."""

    def __init__(self, files: list[Path], seed: int = 0) -> None:
        self.files, self.seed = files, seed

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, g: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = random.Random(self.seed * 1_000_003 + g)
        with Image.open(rng.choice(self.files)) as im:
            img = im.convert("RGB")
        w, h = img.size
        x, y = rng.randrange(w - HR_PATCH + 1), rng.randrange(h - HR_PATCH + 1)
        hr = img.crop((x, y, x + HR_PATCH, y + HR_PATCH))
        lr = hr.resize((HR_PATCH // SCALE, HR_PATCH // SCALE), Image.BICUBIC)
        pair = [torch.from_numpy(np.array(p)).permute(2, 0, 1).float() / 255 for p in (lr, hr)]
        if rng.random() < 0.5:
            pair = [t.flip(-1) for t in pair]
        if rng.random() < 0.5:
            pair = [t.flip(-2) for t in pair]
        if rng.random() < 0.5:
            pair = [t.transpose(-1, -2) for t in pair]
        return pair[0].contiguous(), pair[1].contiguous()


class OneByOne(Dataset):
    """`dataset`'s samples fetched one at a time: the DataLoader calls __getitem__ per sample (no __getitems__)."""

    def __init__(self, dataset: PatchDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, g: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.dataset[g]


def loader(dataset: Dataset, workers: int, batches: int, batch: int = BATCH) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch,
        sampler=StepSampler(0, batches, batch),
        num_workers=workers,
        prefetch_factor=4 if workers else None,
    )


def rate(
    dataset: Dataset,
    workers: int,
    batches: int,
    warmup: int = 3,
    batch: int = BATCH,
    shape: tuple[int, int, int] = (3, HR_PATCH // SCALE, HR_PATCH),
) -> float:
    """Batches per second after `warmup` batches (worker start-up excluded), over `batches` batches of `shape`
    (channels, LR side, HR side: checked)."""
    it = iter(loader(dataset, workers, warmup + batches, batch))
    for _ in range(warmup):
        next(it)
    c, lr_side, hr_side = shape
    t = time.perf_counter()
    for lr, hr in it:
        assert lr.shape == (batch, c, lr_side, lr_side) and hr.shape == (batch, c, hr_side, hr_side)
    return batches / (time.perf_counter() - t)


def data(tmp: Path) -> tuple[str, Store, list[Path]]:
    """(dataset name, prepared train store, its PNG files) in `tmp`."""
    mirror = SHARED / "datasets"
    name = "T91" if (mirror / "T91").is_dir() else "sample"
    if name == "sample":
        print(f"(no T91 under {mirror}: using the embedded sample set)")
    download([name], tmp / "raw", mirrors=[str(mirror)], progress=False)
    split = f"{name}/train"
    files = [p for p in list_images(tmp / "raw" / split) if min(Image.open(p).size) >= HR_PATCH]
    params = PrepareParams(train=(split,), valid=(split,), lr_patch=HR_PATCH // SCALE, stride=12)
    t = time.perf_counter()
    summary = prepare(
        tmp / "raw", tmp / "prepared", params, tuple(sorted({SCALE, *REPRO.pipeline.scales})), progress=False
    )
    print(f"{name}: {len(files)} PNGs ≥ {HR_PATCH} px; prepare: {summary['train']} in {time.perf_counter() - t:.1f} s")
    return name, Store(tmp / "prepared" / "train"), files


def fetch_record(store: Store, spec: RunSpec, batches: int) -> dict:
    """Batched fetch vs one sample at a time for `spec`'s patches (workers 0), after checking that both give the same
    batches bit for bit."""
    ds = PatchDataset(store, spec.scale, spec.hr_patch, color=spec.color, seed=0)
    batch = spec.recipe.batch_size
    pairs = zip(loader(ds, 0, 4, batch), loader(OneByOne(ds), 0, 4, batch), strict=True)
    assert all(torch.equal(a, b) for x, y in pairs for a, b in zip(x, y, strict=True)), "batched fetch differs"
    shape = (1 if spec.color == "y" else 3, spec.hr_patch // spec.scale, spec.hr_patch)
    batched = rate(ds, 0, batches, batch=batch, shape=shape)
    one = rate(OneByOne(ds), 0, batches, batch=batch, shape=shape)
    return {
        "kind": "fetch",
        "model": spec.model,
        "scale": spec.scale,
        "hr_patch": spec.hr_patch,
        "batch": batch,
        "workers": 0,
        "batched_batches_s": batched,
        "one_by_one_batches_s": one,
        "ratio": batched / one,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=60)
    ap.add_argument("--threads", type=int, help="torch intra-op threads in the main process (default: torch's)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    env = environment()
    chosen = _workers(TrainParams(), torch.device("cpu"))
    records = []
    with tempfile.TemporaryDirectory(prefix="bench_data.") as tmp:
        name, store, files = data(Path(tmp))
        ours, naive = PatchDataset(store, SCALE, HR_PATCH), PngPatches(files)
        for workers in sorted({chosen, 0, 2}):
            r_ours, r_naive = rate(ours, workers, args.batches), rate(naive, workers, args.batches)
            records.append(
                {
                    "data": name,
                    "workers": workers,
                    "training_default": workers == chosen,
                    "batch": BATCH,
                    "hr_patch": HR_PATCH,
                    "scale": SCALE,
                    "srpipe_batches_s": r_ours,
                    "naive_batches_s": r_naive,
                    "ratio": r_ours / r_naive,
                }
            )
        small = [fetch_record(store, spec, args.batches) for spec in SMALL]
    rows = [
        [
            f"{r['workers']}{' (training default)' if r['training_default'] else ''}",
            r["srpipe_batches_s"],
            r["naive_batches_s"],
            f"{r['ratio']:.1f}x",
        ]
        for r in records
    ]
    setting = f"batch {BATCH} × HR {HR_PATCH}² x{SCALE} from {name}"
    print(f"batches/s, {setting}; {env['cpus']} CPUs, load {env['load_avg_1m']}")
    print(table(["workers", "srpipe store", "PNG per sample", "srpipe/naive"], rows))
    print(f"\nbatches/s, the repro profile's trainings (params-repro.yaml; workers 0) from {name}")
    rows = [
        [
            f"{r['model']} x{r['scale']}",
            r["hr_patch"],
            r["batch"],
            r["batched_batches_s"],
            r["one_by_one_batches_s"],
            f"{r['ratio']:.2f}x",
        ]
        for r in small
    ]
    print(table(["training", "HR patch", "batch", "batched fetch", "one by one", "ratio"], rows))
    print(f"results appended to {save('data', records + small, env)}")


if __name__ == "__main__":
    main()

"""Training throughput of EDSR-baseline on this machine: srpipe's loop vs a minimal hand-written PyTorch loop over the
same batches (srpipe's overhead, target ≤ 5 %), and the DataLoader's batches/s vs the model's steps/s (target ≥ 5×).

Usage: python benches/bench_train.py [--steps 60] [--scale 2] [--config paper|tiny] [--batch 16] [--patch 96]

Both loops see identical batches, prepared up front (so neither pays for data loading), the same model init, the same
Adam and L1. srpipe's loop adds what a real run needs: EMA, the non-finite guard, the schedule, metrics bookkeeping.
On a CUDA machine the same runs happen with AMP on and off.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _report import environment, save, table
from torch.utils.data import DataLoader

from srpipe.config import PrepareParams, TrainParams
from srpipe.data.store import PatchDataset, StepSampler, Store
from srpipe.models import create_model
from srpipe.runtime import pick_device
from srpipe.stages.download import download
from srpipe.stages.prepare import prepare
from srpipe.tracking import Tracker
from srpipe.train import loop
from srpipe.train.losses import Criterion
from srpipe.train.spec import resolve


def make_store(root: Path, scale: int) -> Path:
    download(["sample"], root / "raw", progress=False)
    params = PrepareParams(train=("sample/train",), valid=("sample/valid",), lr_patch=48, stride=24, max_valid_side=64)
    prepare(root / "raw", root / "prepared", params, (scale,), progress=False)
    return root / "prepared"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--config", default="paper")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=96)
    args = ap.parse_args()
    device = pick_device()
    env = environment() | {"device": str(device)}
    with tempfile.TemporaryDirectory() as tmp:
        store_dir = make_store(Path(tmp), args.scale)
        store, valid = Store(store_dir / "train"), Store(store_dir / "valid")
        opts = TrainParams(config=args.config, iterations=args.steps, val_every=10**9, log_every=10**9, workers=0)
        spec = resolve("edsr_baseline", args.scale, opts, batch_size=args.batch, patch_size=args.patch, lr=1e-4)
        ds = PatchDataset(store, args.scale, spec.hr_patch, seed=0)

        def loader(workers: int) -> DataLoader:
            sampler = StepSampler(0, args.steps, args.batch)
            return DataLoader(
                ds, batch_size=args.batch, sampler=sampler, num_workers=workers, pin_memory=device.type == "cuda"
            )

        t = time.perf_counter()
        batches = [(i.to(device), h.to(device)) for i, h in loader(0)]
        data_rate = args.steps / (time.perf_counter() - t)
        rows, records = [], []
        for amp in [None, torch.bfloat16] if device.type == "cuda" else [None]:
            # Minimal loop: forward, L1, backward, Adam: nothing else.
            torch.manual_seed(0)
            net = create_model("edsr_baseline", args.scale, args.config).to(device)
            opt = torch.optim.Adam(net.parameters(), lr=1e-4)
            for inp, hr in batches[:3]:  # warm-up
                F.l1_loss(net(inp), hr).backward()
            opt.zero_grad()
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            for inp, hr in batches:
                with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                    loss = F.l1_loss(net(inp), hr)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            minimal = args.steps / (time.perf_counter() - t)
            # srpipe's loop on the same batches (its DataLoader replaced by the prepared list).
            torch.manual_seed(0)
            net = create_model("edsr_baseline", args.scale, args.config).to(device)
            st = loop.build_state(spec, net, Criterion(spec.recipe).to(device), device, fp16=False)
            real_loader = loop.DataLoader
            loop.DataLoader = lambda *a, **k: batches
            try:
                result = loop.fit(
                    spec,
                    st,
                    store,
                    valid,
                    dataclasses.replace(opts, channels_last=False),
                    device,
                    None,
                    Tracker(),
                    amp_dtype=amp,
                    progress=False,
                )
            finally:
                loop.DataLoader = real_loader
            ours = args.steps / result["seconds"]
            overhead = minimal / ours - 1
            rows.append([str(amp or "fp32"), minimal, ours, f"{overhead:+.1%}", data_rate, data_rate / ours])
            records.append(
                {
                    "amp": str(amp),
                    "minimal_it_s": minimal,
                    "srpipe_it_s": ours,
                    "overhead": overhead,
                    "loader_batches_s": data_rate,
                    "loader_over_steps": data_rate / ours,
                }
            )
    print(
        f"EDSR-baseline x{args.scale} ({args.config}), batch {args.batch}, HR patch {args.patch}, "
        f"{args.steps} steps on {device}"
    )
    print(table(["precision", "minimal it/s", "srpipe it/s", "overhead", "loader batch/s", "loader/steps"], rows))
    print(f"results appended to {save('bench_train', records, env)}")


if __name__ == "__main__":
    main()

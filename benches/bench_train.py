"""Training throughput of EDSR-baseline on this machine: a plain fp32 NCHW PyTorch loop (the peers' speed) vs srpipe's
loop in fp32 (its own overhead, target ≤ 5 %) and at srpipe's precision (train.precision auto: bf16 autocast and
channels-last where the device computes bf16 natively; issue 15's target ≥ 1.3×), with the loss curves compared;
and the DataLoader's batches/s vs the model's steps/s (target ≥ 5×).

Usage: python benches/bench_train.py [--steps 60] [--scale 2] [--config paper|tiny] [--batch 16] [--patch 96]

All loops see identical batches, prepared up front (so none pays for data loading), the same model init, the same
Adam and L1. srpipe's loop adds what a real run needs: EMA, the non-finite guard, the schedule, metrics bookkeeping.
Loss curves (run with --steps 500): the per-step L1 of srpipe's precision against the plain fp32 loop's, in windows
of 50 steps; "within noise" means every window's mean differs by less than 2 standard errors of the fp32 window
mean (its step-to-step spread / sqrt(50)), and the report gives the largest such difference in those units.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from _report import environment, save, table
from torch.utils.data import DataLoader

from srpipe.config import PrepareParams, TrainParams
from srpipe.data.store import PatchDataset, StepSampler, Store
from srpipe.models import create_model
from srpipe.runtime import amp_dtype, pick_device, precision_name
from srpipe.stages.download import download
from srpipe.stages.prepare import prepare
from srpipe.tracking import Tracker
from srpipe.train import loop
from srpipe.train.losses import Criterion
from srpipe.train.spec import resolve


def make_store(root: Path, scales: tuple[int, ...], **prepare_params: Any) -> Path:
    """The offline `sample` images as a patch store at `scales` (PrepareParams fields override the small defaults)."""
    download(["sample"], root / "raw", progress=False)
    defaults = {
        "train": ("sample/train",),
        "valid": ("sample/valid",),
        "lr_patch": 48,
        "stride": 24,
        "max_valid_side": 64,
    }
    params = PrepareParams(**defaults | prepare_params)
    prepare(root / "raw", root / "prepared", params, scales, progress=False)
    return root / "prepared"


class Recorder(Tracker):
    """A tracker that keeps every metric the loop logs, by name (the loss of every step with log_every=1)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, list[float]] = defaultdict(list)

    def metrics(self, values, step: int) -> None:
        for key, value in values.items():
            self.values[key].append(float(value))


@contextlib.contextmanager
def fed(batches: Iterable[Any]) -> Iterator[None]:
    """srpipe's training loop reads `batches` instead of its DataLoader: the model's and the loop's speed alone."""
    real = loop.DataLoader
    loop.DataLoader = lambda *a, **k: batches
    try:
        yield
    finally:
        loop.DataLoader = real


def curve_gap(curves: dict[str, list[float]], label: str, window: int = 50) -> float:
    """Largest difference of 50-step window means from the plain fp32 loop's, in its window mean's standard errors."""
    ref, got = curves["minimal fp32"], curves[label]
    worst = 0.0
    for i in range(0, len(ref) - window + 1, window):
        r, g = torch.tensor(ref[i : i + window]), torch.tensor(got[i : i + window])
        worst = max(worst, float((g.mean() - r.mean()).abs() / (r.std() / window**0.5)))
    return worst


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
        store_dir = make_store(Path(tmp), (args.scale,))
        store, valid = Store(store_dir / "train"), Store(store_dir / "valid")
        opts = TrainParams(config=args.config, iterations=args.steps, val_every=10**9, log_every=10**9, workers=0)
        spec = resolve(
            "edsr_baseline", args.scale, opts, recipe={"batch_size": args.batch, "patch_size": args.patch, "lr": 1e-4}
        )
        ds = PatchDataset(store, args.scale, spec.hr_patch, seed=0)

        def loader(workers: int) -> DataLoader:
            sampler = StepSampler(0, args.steps, args.batch)
            return DataLoader(
                ds, batch_size=args.batch, sampler=sampler, num_workers=workers, pin_memory=device.type == "cuda"
            )

        t = time.perf_counter()
        batches = [(i.to(device), h.to(device)) for i, h in loader(0)]
        data_rate = args.steps / (time.perf_counter() - t)
        curves, rows, records = {}, [], []
        amp = amp_dtype(device, "auto")

        def sync() -> None:
            if device.type == "cuda":
                torch.cuda.synchronize()

        # Minimal loop: forward, L1, backward, Adam: nothing else; fp32, NCHW.
        torch.manual_seed(0)
        net = create_model("edsr_baseline", args.scale, args.config).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)
        for inp, hr in batches[:3]:  # warm-up: gradients only, discarded
            F.l1_loss(net(inp), hr).backward()
        opt.zero_grad()
        losses = []
        sync()
        t = time.perf_counter()
        for inp, hr in batches:
            loss = F.l1_loss(net(inp), hr)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        sync()
        minimal = args.steps / (time.perf_counter() - t)
        curves["minimal fp32"] = [float(v) for v in losses]
        for label, precision in [("srpipe fp32", "fp32"), ("srpipe " + precision_name(amp), "auto")]:
            if label in curves:  # no native bf16: auto is fp32, already measured
                continue
            torch.manual_seed(0)
            net = create_model("edsr_baseline", args.scale, args.config).to(device)
            dtype = amp_dtype(device, precision)
            st = loop.build_state(spec, net, Criterion(spec.recipe).to(device), device, fp16=dtype == torch.float16)
            tracker = Recorder()
            with fed(batches):
                run_opts = dataclasses.replace(opts, channels_last=dtype is not None, log_every=1)
                result = loop.fit(spec, st, store, valid, run_opts, device, None, tracker, dtype, progress=False)
            curves[label] = tracker.values["loss"]
            ours = args.steps / result["seconds"]
            rows.append([label, minimal, ours, f"{ours / minimal:.2f}x", data_rate / ours, curve_gap(curves, label)])
            records.append(
                {
                    "loop": label,
                    "minimal_fp32_it_s": minimal,
                    "srpipe_it_s": ours,
                    "speedup": ours / minimal,
                    "loader_batches_s": data_rate,
                    "loader_over_steps": data_rate / ours,
                    "curve_gap_se": curve_gap(curves, label),
                    "final_loss_mean": sum(curves[label][-50:]) / len(curves[label][-50:]),
                    "minimal_final_loss_mean": sum(curves["minimal fp32"][-50:]) / 50,
                }
            )
    print(
        f"EDSR-baseline x{args.scale} ({args.config}), batch {args.batch}, HR patch {args.patch}, "
        f"{args.steps} steps on {device}"
    )
    headers = ["loop", "plain fp32 it/s", "srpipe it/s", "vs plain", "loader/steps", "max curve gap (SE)"]
    print(table(headers, rows))
    print("curve gap: largest |window mean - plain fp32 window mean| over 50-step windows, in standard errors of the")
    print("plain loop's window mean; below 2 is within noise")
    print(f"results appended to {save('bench_train', records, env)}")


if __name__ == "__main__":
    main()

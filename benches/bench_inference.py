"""Inference speed of the paper configs: each candidate speed-up on, off and combined, against the eager fp32 NCHW
forward the peers run (BasicSR, super-image, torchsr build the same graphs), with srpipe's own placement
(srpipe.runtime.for_inference: channels-last, bf16 where native, image convolutions fp32) as the last column.

Usage: python benches/bench_inference.py [--models edsr_baseline,rcan,rdn,vdsr,lapsrn] [--scale 4] [--repeats 3]
                                         [--compile] [--released DIR]

Candidates: inference_mode (vs no_grad), channels-last weights and input, bf16 autocast (only on a device with
native bf16), torch.compile (--compile: its first call, the compilation, is reported on its own and excluded).
Each is a ratio to the reference in the same process, best of `--repeats` after one warm-up. LR sides follow the
issue's reference measurements: EDSR-baseline 128², the others 64² (VDSR, a bicubic-input net, sees 256²).
--released DIR (weights imported by `srpipe import --released`, e.g. data/released) also scores the authors' VDSR and
LapSRN files on Set5/Set14 under data/raw in fp32 and at srpipe's precision: the equal-output check.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _report import ROOT, best_time, environment, save, table

from srpipe.context import Context
from srpipe.models import create_model, get_card
from srpipe.runtime import amp_dtype, for_inference, pick_device

SIDES = {"edsr_baseline": 128}  # LR side per model; others 64


def forward(net: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None, mode: Callable) -> Callable[[], None]:
    def run() -> None:
        amp = torch.autocast(x.device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        with mode(), amp:
            net(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize()

    return run


def candidates(name: str, scale: int, device: torch.device, do_compile: bool) -> dict[str, Callable[[], None]]:
    """Each configuration's forward, built on the same weights and input."""
    net = create_model(name, scale, "paper").to(device).eval()
    channels = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d)).in_channels
    side = SIDES.get(name, 64) * (scale if get_card(name).input_space == "bicubic" else 1)
    x = torch.rand(1, channels, side, side, device=device)
    xc = x.contiguous(memory_format=torch.channels_last)
    bf16 = amp_dtype(device, "auto")
    im = torch.inference_mode
    runs = {
        "reference": forward(net, x, None, torch.no_grad),  # what a peer's test script does
        "inference_mode": forward(net, x, None, im),
    }
    cl = create_model(name, scale, "paper").to(device, memory_format=torch.channels_last).eval()
    cl.load_state_dict(net.state_dict())
    runs["channels_last"] = forward(cl, xc, None, im)
    if bf16 is not None:
        runs["bf16"] = forward(net, x, bf16, im)
        runs["bf16+cl"] = forward(cl, xc, bf16, im)  # every conv in bf16
    ours, dtype = for_inference(create_model(name, scale, "paper"), device, "auto", channels)
    ours.load_state_dict(net.state_dict())
    runs["srpipe"] = forward(ours, xc, dtype, im)
    if do_compile:
        runs["compile"] = forward(torch.compile(net), x, None, im)
        runs["compile+srpipe"] = forward(torch.compile(ours), xc, dtype, im)
    return runs


def speed(args: argparse.Namespace, device: torch.device) -> list[dict]:
    records, rows, headers = [], [], []
    for name in args.models.split(","):
        card = get_card(name)
        scale = args.scale if args.scale in card.scales else card.scales[-1]
        runs = candidates(name, scale, device, args.compile)
        record: dict = {"model": name, "scale": scale, "lr_side": SIDES.get(name, 64)}
        for label, fn in runs.items():
            if label.startswith("compile"):
                t = time.perf_counter()
                fn()  # compilation
                record[f"{label}_first_call_s"] = time.perf_counter() - t
            record[f"{label}_ms"] = 1000 * best_time(fn, args.repeats)
        ref = record["reference_ms"]
        headers = ["model", "reference ms", *[k for k in runs if k != "reference"]]
        rows.append([f"{name} x{scale}", ref, *[f"{ref / record[f'{k}_ms']:.2f}x" for k in runs if k != "reference"]])
        records.append(record)
        print(table(headers, rows[-1:]), flush=True)
    print(f"\nspeed-up over the eager fp32 NCHW forward (no_grad), best of {args.repeats}, on {device}")
    print(table(headers, rows))
    return records


def equal_output(folder: Path, device: torch.device) -> list[dict]:
    """PSNR/SSIM of the authors' VDSR and LapSRN files in fp32 and at srpipe's precision, on Set5 and Set14."""
    from srpipe.config import EvaluateParams
    from srpipe.released import load_released
    from srpipe.stages.evaluate import evaluate

    sets = {d: ROOT / "data" / "raw" / d / "test" for d in ("Set5", "Set14")}
    sets = {d: p for d, p in sets.items() if p.is_dir()}
    catalog, records, rows = load_released()[0], [], []
    for name in ("vdsr_x2", "vdsr_x3", "vdsr_x4", "lapsrn_x2", "lapsrn_x4"):
        weights = folder / f"{name}.pt"
        if not weights.exists() or not sets:
            print(f"skipped {name}: {weights} or Set5/Set14 under data/raw missing")
            continue
        spec = catalog[name]
        got = {}
        for precision in ("fp32", "auto"):
            ev = EvaluateParams(latency_repeats=3, protocol=spec.protocol, precision=precision)
            got[precision] = evaluate(
                spec.model, spec.scale, sets, ev, weights, ctx=Context(device=str(device), progress=False)
            )
        lat = got["fp32"]["latency_ms"] / got["auto"]["latency_ms"]
        for d in sets:
            a, b = got["fp32"]["datasets"][d], got["auto"]["datasets"][d]
            rows.append(
                [name, d, a["psnr"], f"{b['psnr'] - a['psnr']:+.4f}", f"{b['ssim'] - a['ssim']:+.5f}", f"{lat:.2f}x"]
            )
        records.append(
            {"name": name, "precision": got["auto"]["precision"], "speedup": lat}
            | {f"{p}_{d}_{m}": got[p]["datasets"][d][m] for p in got for d in sets for m in ("psnr", "ssim")}
        )
    print(f"\nthe authors' weights through `srpipe evaluate`: {got['auto']['precision']} - fp32" if records else "")
    print(table(["weights", "set", "fp32 PSNR", "Δ PSNR dB", "Δ SSIM", "latency speed-up"], rows))
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="edsr_baseline,rcan,rdn,vdsr,lapsrn", help="'' skips the speed table")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="also torch.compile (minutes of compilation on a CPU)")
    ap.add_argument("--released", type=Path, help="imported released weights (e.g. data/released): equal-output check")
    args = ap.parse_args()
    device = pick_device()
    env = environment() | {"device": str(device), "native_bf16": amp_dtype(device, "auto") is not None}
    records = speed(args, device) if args.models else []
    if args.released:
        records += equal_output(args.released, device)
    print(f"results appended to {save('bench_inference', records, env)}")


if __name__ == "__main__":
    main()

"""GPU check (issue 15): EDSR-baseline x2 and RCAN x2 training steps/s in fp32 vs bf16 autocast + channels-last (+
torch.compile) through srpipe's own training loop, evaluation images/s on Set14, the fraction of the GPU's bf16 peak,
and the projected hours of the paper profile (params-paper.yaml).

Usage: python benches/bench_gpu.py [--steps 60] [--models edsr_baseline,rcan] [--no-compile] [--no-projection]
       python benches/bench_gpu.py --smoke     # anywhere: tiny configs, a few steps, nothing saved (tests run it)

One prepared run for a lent GPU (about 15 minutes of device time; this script needs ~5 on an H100). Trainings use
each paper's recipe (batch, patch, loss, optimizer) and srpipe's loop (`srpipe.train.loop.fit`: EMA, the non-finite
guard, the schedule), fed with random batches already on the device, so the numbers are the model's and the loop's,
not the DataLoader's (bench_train.py measures that one). Steps/s is the loop's own `it_per_s` after a warm-up window
(compilation and cuDNN's autotuning happen there). FLOPs per step are counted by torch's FlopCounterMode over one
forward and backward; the peak is the data sheet's dense bf16 figure for the GPU's name and the best bf16 matmul
measured here. The projection multiplies each paper-profile training's budget by its measured bf16 step time
(`--projection-steps` timed steps per model, after the warm-up).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import bench_train
import torch
from _report import ROOT, environment, save, table
from bench_evaluate import set14

from srpipe.config import EvaluateParams, TrainParams, load_params
from srpipe.context import Context
from srpipe.data.store import Store
from srpipe.models import create_model
from srpipe.runtime import amp_dtype, pick_device
from srpipe.stages.evaluate import evaluate
from srpipe.stages.train import net_channels
from srpipe.train import loop
from srpipe.train.losses import Criterion
from srpipe.train.spec import RunSpec, resolve
from srpipe.weights import WeightsCard, save_weights

# Data-sheet dense bf16 tensor-core peaks (FLOP/s), by a substring of torch.cuda.get_device_name(); first match wins.
PEAKS = (("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("A100", 312e12), ("L40S", 362e12), ("L4", 121e12))


def make_store(root: Path) -> Path:
    """The offline `sample` images at x2/x3/x4, in windows as large as the largest paper patch (DRN: 96 LR px); the
    training photographs double as validation. fit() builds its dataset and validates from it."""
    return bench_train.make_store(root, (2, 3, 4), valid=("sample/train",), lr_patch=96, stride=96, max_valid_side=128)


def _batch(spec: RunSpec, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A random batch of the recipe's shape: (input, HR), the input LR or, for pre-upsampling networks, HR-sized."""
    side = spec.hr_patch if spec.card.input_space == "bicubic" else spec.hr_patch // spec.scale
    c, b = net_channels(spec), spec.recipe.batch_size
    return torch.rand(b, c, side, side, device=device), torch.rand(b, c, spec.hr_patch, spec.hr_patch, device=device)


def _net(spec: RunSpec, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(spec.model, spec.scale, spec.config, channels=net_channels(spec), **spec.arch).to(device)


def steps_per_s(spec: RunSpec, opts: TrainParams, store: Path, device: torch.device) -> float:
    """srpipe's training loop on one random batch of the recipe's shape, repeated: steps/s after the first log
    window (opts.log_every steps: compilation and autotuning happen there)."""
    dtype = amp_dtype(device, opts.precision)
    st = loop.build_state(spec, _net(spec, device), Criterion(spec.recipe).to(device), device, dtype == torch.float16)
    batch = _batch(spec, device)
    tracker = bench_train.Recorder()
    with bench_train.fed(batch for _ in range(spec.iterations)):
        loop.fit(spec, st, Store(store / "train"), Store(store / "valid"), opts, device, None, tracker, dtype, False)
    rates = tracker.values["it_per_s"][1:]  # the loop's own steps/s at each log line, after the first window
    return sum(rates) / len(rates)


def flops_per_step(spec: RunSpec, device: torch.device) -> float:
    """Forward + backward FLOPs of one training batch, as torch's FlopCounterMode counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    net, (inp, _) = _net(spec, device), _batch(spec, device)
    with FlopCounterMode(display=False) as counter:
        out = net(inp)
        sum(o.float().mean() for o in (out if isinstance(out, list | tuple) else [out])).backward()
    return float(counter.get_total_flops())


def matmul_peak(device: torch.device, n: int = 8192, reps: int = 20) -> float:
    """The best bf16 matmul rate measured here (FLOP/s): what this device's tensor cores give in practice."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60, help="timed steps per variant, after as many warm-up steps")
    ap.add_argument("--models", default="edsr_baseline,rcan")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    ap.add_argument("--no-projection", action="store_true", help="skip timing every paper-profile training")
    ap.add_argument("--projection-steps", type=int, default=20)
    ap.add_argument(
        "--smoke", action="store_true", help="tiny configs, 4 steps, fewer cases, any device: checks the script runs"
    )
    args = ap.parse_args()
    device = pick_device()
    if device.type != "cuda" and not args.smoke:
        raise SystemExit("bench_gpu: no CUDA device here (use --smoke to check the script on this machine)")
    config, steps = ("tiny", 4) if args.smoke else ("paper", args.steps)
    torch.backends.cudnn.benchmark = True  # as srpipe.stages.train sets it on CUDA
    store_dir = tempfile.TemporaryDirectory()
    store = make_store(Path(store_dir.name))
    env = environment() | {"device": torch.cuda.get_device_name() if device.type == "cuda" else str(device)}
    base = TrainParams(config=config, val_every=10**9, ckpt_every=10**9, log_every=steps, workers=0, keep="last")
    variants = [("fp32 NCHW", {"precision": "fp32", "channels_last": False})]
    variants.append(("bf16 + channels-last", {"precision": "auto", "channels_last": True}))
    if not (args.no_compile or args.smoke):
        variants.append(
            ("bf16 + channels-last + compile", {"precision": "auto", "channels_last": True, "compile": True})
        )
    rows, records = [], []
    peak_sheet = next((p for name, p in PEAKS if name in env["device"]), None)
    peak_here = matmul_peak(device) if device.type == "cuda" else None
    for model in args.models.split(","):
        spec = resolve(model, args.scale, dataclasses.replace(base, iterations=2 * steps))
        flops = flops_per_step(spec, device)
        fp32 = None
        for label, change in variants:
            rate = steps_per_s(spec, dataclasses.replace(base, iterations=2 * steps, **change), store, device)
            fp32 = fp32 or rate
            achieved = flops * rate
            frac = {k: achieved / p if p else None for k, p in (("sheet", peak_sheet), ("matmul", peak_here))}
            rows.append([f"{model} x{args.scale}", label, rate, f"{rate / fp32:.2f}x", achieved / 1e12, frac["sheet"]])
            records.append({"model": model, "scale": args.scale, "variant": label, "steps_s": rate, "flops_step": flops,
                            "tflops": achieved / 1e12, "of_sheet_peak": frac["sheet"], "of_matmul_peak": frac["matmul"],
                            "batch": spec.recipe.batch_size, "hr_patch": spec.hr_patch})  # fmt: skip
    print(f"training on {env['device']} ({config} configs, paper recipes, {steps} timed steps after {steps} warm-up)")
    print(table(["model", "variant", "steps/s", "vs fp32", "TFLOP/s", "of data-sheet bf16 peak"], rows))
    if peak_here:
        print(f"bf16 peaks: data sheet {peak_sheet and peak_sheet / 1e12} TFLOP/s, matmul here {peak_here / 1e12:.0f}")

    with tempfile.TemporaryDirectory() as tmp:  # evaluation: srpipe's evaluate stage on Set14, random weights
        folder = set14(Path(tmp) / "raw")  # the shared copy when beside the checkout, else Set14-sized noise
        n = len(list(folder.glob("*.png")))
        for model in args.models.split(","):
            weights = Path(tmp) / f"{model}.pt"
            card = WeightsCard(model=model, scale=args.scale, config=config, color="rgb")
            save_weights(weights, card, create_model(model, args.scale, config).state_dict())
            for precision in ("fp32",) if args.smoke else ("fp32", "auto"):
                params = EvaluateParams(latency_repeats=1, precision=precision)
                ctx = Context(device=str(device), progress=False)
                evaluate(model, args.scale, {"Set14": folder}, params, weights=weights, ctx=ctx)  # warm-up
                t = time.perf_counter()
                r = evaluate(model, args.scale, {"Set14": folder}, params, weights=weights, ctx=ctx)
                rate = n / (time.perf_counter() - t)
                print(f"evaluate {model} x{args.scale} on Set14 ({n} images), {r['precision']}: {rate:.2f} images/s")
                records.append(
                    {"model": model, "scale": args.scale, "eval_precision": r["precision"], "images_s": rate}
                )

    if not args.no_projection:  # every training of the paper profile at its budget, at srpipe's setting
        paper = load_params(ROOT / "params-paper.yaml")
        hours, prows = 0.0, []
        for job in paper.pipeline.jobs()[: 2 if args.smoke else None]:
            spec = resolve(*job, dataclasses.replace(paper.train, config=config, iterations=None))
            k = 2 if args.smoke else args.projection_steps
            opts = dataclasses.replace(base, iterations=2 * k, log_every=k, precision="auto", channels_last=True)
            bench_spec = dataclasses.replace(spec, iterations=2 * k, datasets=())  # the batch is random anyway
            rate = steps_per_s(bench_spec, opts, store, device)
            h = spec.iterations / rate / 3600
            hours += h
            prows.append([f"{job[0]} x{job[1]}", spec.iterations, rate, h])
            records.append({"projection": f"{job[0]}_x{job[1]}", "iterations": spec.iterations, "steps_s": rate})
        print(table(["paper-profile training", "iterations", "steps/s", "hours"], prows))
        print(f"paper profile: {hours:.1f} hours of training on one {env['device']} (evaluation not counted)")
    store_dir.cleanup()
    if not args.smoke:
        print(f"results appended to {save('bench_gpu', records, env)}")


if __name__ == "__main__":
    main()

"""Inference throughput (output megapixels/s) of each paper-config model at a fixed input size: eager vs
channels_last vs torch.compile, as a table. On a CUDA machine it runs there (bf16 autocast too).

Usage: python benches/bench_inference.py [--models edsr,rcan] [--scale 4] [--side 64] [--repeats 3] [--no-compile]

torch.compile's first call (compilation) is excluded from the throughput and reported in its own column.
"""

from __future__ import annotations

import argparse
import functools
import time

import torch
from _report import best_time, environment, save, table

from srpipe.models import create_model, get_card, list_models
from srpipe.runtime import pick_device


def run(model: torch.nn.Module, inp: torch.Tensor) -> None:
    with torch.inference_mode():
        model(inp)
    if inp.device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="", help="comma-separated (default: all registered)")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--side", type=int, default=64, help="LR input side")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args()
    device = pick_device()
    env = environment() | {"device": str(device)}
    names = [m for m in (args.models.split(",") if args.models else list_models()) if m != "bicubic"]
    rows, records = [], []
    for name in names:
        card = get_card(name)
        scale = args.scale if args.scale in card.scales else card.scales[-1]
        side = args.side * (scale if card.input_space == "bicubic" else 1)
        mp = (args.side * scale) ** 2 / 1e6
        net = create_model(name, scale, "paper").to(device).eval()
        x = torch.rand(1, 3, side, side, device=device)

        eager = mp / best_time(functools.partial(run, net, x), args.repeats)
        cl_net, cl_x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        channels_last = mp / best_time(functools.partial(run, cl_net, cl_x), args.repeats)
        compiled, compile_s = float("nan"), float("nan")
        if not args.no_compile:
            t = time.perf_counter()
            c_net = torch.compile(net)
            run(c_net, x)
            compile_s = time.perf_counter() - t
            compiled = mp / best_time(functools.partial(run, c_net, x), args.repeats, warmup=0)
        rows.append(
            [f"{name} x{scale}", eager, channels_last, channels_last / eager, compiled, compiled / eager, compile_s]
        )
        records.append(
            {
                "model": name,
                "scale": scale,
                "side": args.side,
                "eager_mp_s": eager,
                "channels_last_mp_s": channels_last,
                "compile_mp_s": compiled,
                "compile_s": compile_s,
            }
        )
        print(table(["model", "eager MP/s", "ch-last MP/s", "ratio", "compile MP/s", "ratio", "compile s"], rows[-1:]))
    print(f"\n{args.side}×{args.side} LR input on {device}, output megapixels per second (best of {args.repeats})")
    print(table(["model", "eager MP/s", "ch-last MP/s", "ratio", "compile MP/s", "ratio", "compile s"], rows))
    print(f"results appended to {save('bench_inference', records, env)}")


if __name__ == "__main__":
    main()

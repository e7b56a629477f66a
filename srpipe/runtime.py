"""Where and in what precision the networks run: device choice, the autocast dtype, and a model's placement for
inference. One home for these facts, read by `train`, `evaluate`, `upscale` and the benches.

Measured on a 2-core Xeon with AMX (benches/bench_precision.py, README "Performance"): bf16 autocast with
channels-last weights runs the paper configs' inference 3–8× and an EDSR-baseline training step ~4× faster than
fp32 NCHW; on a CPU without native bf16 the same autocast is emulated and slower than fp32, so it is never chosen
there.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

import torch
from torch import nn

from srpipe.config import PRECISIONS


def pick_device(name: str = "auto") -> torch.device:
    """`auto` = this process's CUDA device when there is one (torchrun's LOCAL_RANK, else the first), else the CPU;
    anything else as torch spells it."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX), the case where oneDNN's bf16 kernels beat
    fp32. The CPU flags are read from /proc/cpuinfo; elsewhere (macOS, Windows) oneDNN's own check decides."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        flags = next((line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")), "").split()
        return bool({"avx512_bf16", "amx_bf16"} & set(flags))
    try:  # a private torch helper: used only where /proc/cpuinfo is missing
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def amp_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for `precision` on `device`; None = fp32.

    `auto`: bf16 on CUDA devices that have it and on CPUs with native bf16; fp16 (with a grad scaler in training) on
    older CUDA devices; fp32 elsewhere. `bf16` asks for bf16 and fails where the device would only emulate it.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return None
    native = torch.cuda.is_bf16_supported() if device.type == "cuda" else device.type == "cpu" and cpu_has_native_bf16()
    if native:
        return torch.bfloat16
    if precision == "bf16":
        raise ValueError(f"precision bf16: {device_name(device)} has no native bf16 (it would run slower than fp32)")
    return torch.float16 if device.type == "cuda" else None


def image_channels(color: str) -> int:
    """Channels a network sees for a colour mode: 1 for "y" (luma only), 3 for "rgb"."""
    return 1 if color == "y" else 3


def precision_name(dtype: torch.dtype | None) -> str:
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


# Under bf16 autocast, the convolutions that touch the image stay fp32: rounded to bf16's 8 significant bits, an
# image in [0, 1] moves by up to half a grey level, which a super-resolution network amplifies like any detail or
# writes straight into its output. So the first two convolutions run (the image and its first features), the last one
# and every one that reads or writes the image's channels (LapSRN's image up-samplers, the 64 → 1 reconstructions)
# keep fp32; the wide body runs bf16. Authors' weights, Set5/Set14 (benches/bench_precision.py): all-bf16 VDSR x4
# -0.15/-0.12 dB, LapSRN x2 -0.05 dB; with these convolutions fp32, every released model within 0.01 dB.
FP32_HEAD_CONVS = 2


def for_inference(
    net: nn.Module, device: torch.device, precision: str = "fp32", channels: int = 3
) -> tuple[nn.Module, torch.dtype | None]:
    """`net` on `device` in eval mode with NHWC weights, and the autocast dtype to run it in (None = fp32).

    Channels-last is 1.1–1.5× faster in fp32 on CPU and the layout oneDNN's bf16 and cuDNN's tensor-core kernels
    want (benches/bench_precision.py). Under a reduced `precision` the convolutions that touch the image are pinned
    to fp32 (`image_convs`, found by running a `channels`-channel probe); a network without weights (bicubic) always
    runs in fp32, as its interpolation is the reference every other row is measured against.
    """
    net = net.to(device, memory_format=torch.channels_last).eval()
    dtype = amp_dtype(device, precision) if any(True for _ in net.parameters()) else None
    if dtype is not None:
        pin_fp32(image_convs(net, channels, device))
    return net, dtype


def image_convs(net: nn.Module, channels: int, device: torch.device) -> list[nn.Module]:
    """The convolutions of `net` that see or make the image (see FP32_HEAD_CONVS), found by running a probe: module
    order need not be run order."""
    order: list[nn.Module] = []
    hooks = [
        m.register_forward_hook(lambda m, *_: order.append(m) if m not in order else None)
        for m in net.modules()
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
    ]
    try:
        with torch.inference_mode():
            net(torch.rand(1, channels, 16, 16, device=device).contiguous(memory_format=torch.channels_last))
    finally:
        for h in hooks:
            h.remove()
    touching = [m for m in order if channels in (m.in_channels, m.out_channels)]
    return list(dict.fromkeys([*order[:FP32_HEAD_CONVS], *order[-1:], *touching]))


def pin_fp32(modules: list[nn.Module]) -> None:
    """Run each of `modules` in fp32 inside any autocast region: its inputs cast up, autocast off around it."""

    def enter(module: nn.Module, args: tuple) -> tuple:
        module._srpipe_fp32 = torch.autocast(args[0].device.type, enabled=False)
        module._srpipe_fp32.__enter__()
        return tuple(a.float() if torch.is_tensor(a) else a for a in args)

    def leave(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        module._srpipe_fp32.__exit__(None, None, None)

    for m in modules:
        m.register_forward_pre_hook(enter)
        m.register_forward_hook(leave, always_call=True)  # autocast comes back on even when the module raises

"""What a model costs: parameters, FLOPs for a fixed input, median latency and peak memory on a device."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from srpipe.models import count_params


def flops(model: nn.Module, x: Tensor) -> int:
    """Floating-point operations of one forward pass on `x` (torch.utils.flop_counter: convs and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(x)
    return int(counter.get_total_flops())


def latency(fn: Callable[[], object], device: torch.device, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of `fn` in milliseconds, after `warmup` calls (synchronising CUDA)."""
    times = []
    for i in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """Peak CUDA memory allocated since the last reset; on CPU the process's peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def summary(model: nn.Module, channels: int, side: int, device: torch.device) -> dict[str, int]:
    x = torch.zeros(1, channels, side, side, device=device)
    return {"params": count_params(model), "flops": flops(model, x)}

"""Memory budgets for inference: sizes as people write them, this process's resident memory, the machine's free
memory, and the peak of tensor memory a function allocates, measured by running it once on a small input.

Tiled inference picks its tile from these before it starts (srpipe.inference.plan_tile), instead of waiting for an
out-of-memory error that a CPU never raises: Linux kills the process first.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# The default cap leaves a fifth of what the machine has free to everything else running on it.
DEFAULT_FRACTION = 0.8


def parse_size(text: str | int) -> int:
    """Bytes from `2GB`, `1.5G`, `512MiB`, `750m` or a plain number: k/M/G/T are powers of 1000, with an `i` of 1024."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*(?:([kmgt])(i?))?b?\s*", str(text), re.IGNORECASE)
    if not m or float(m[1]) <= 0:
        raise ValueError(f"not a memory size: {text!r} (e.g. 2GB, 1.5GiB, 800MB)")
    unit = (1024 if m[3] else 1000) ** ("_kmgt".index(m[2].lower()) if m[2] else 0)
    return int(float(m[1]) * unit)


def format_size(n: float) -> str:
    """`1.23 GB`: decimal units, as `parse_size` reads them back."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} TB"


def rss_bytes() -> int:
    """This process's resident set size now (Linux /proc; elsewhere its peak, which is never lower)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        scale = 1 if os.uname().sysname == "Darwin" else 1024  # macOS reports bytes, Linux KiB
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def available_bytes() -> int | None:
    """Memory the machine can still give without swapping: MemAvailable, or psutil's `available`; None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def memory_cap(max_memory: str | int | None = None) -> int | None:
    """The resident memory this process may reach: `max_memory` if given, else what it holds now plus
    DEFAULT_FRACTION of the machine's available memory; None when neither is known (no cap).

    A cap also fixes how the C allocator returns memory (`hand_back_freed_memory`), so that it can hold.
    """
    if max_memory is not None:
        cap = parse_size(max_memory)
    elif (free := available_bytes()) is not None:
        cap = rss_bytes() + int(DEFAULT_FRACTION * free)
    else:
        return None
    hand_back_freed_memory()
    return cap


def hand_back_freed_memory() -> None:
    """Make glibc return every freed block over 128 KiB to the kernel at once (a fixed mmap threshold), for good.

    By default glibc raises that threshold after the first large free and keeps later blocks in its heap, which a
    sequence of tiles fragments: a tile's resident memory came to 1.4× what was planned from the allocation record
    (ESPCN x4, tiles of 200 and 354 px) and the cap did not hold; with the threshold fixed, to 0.75×. Elsewhere than
    glibc: nothing.
    """
    import ctypes

    with contextlib.suppress(OSError, AttributeError):  # no C library symbols (Windows) or no mallopt (macOS)
        ctypes.CDLL(None).mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD (malloc.h); 128 KiB is glibc's starting value


@contextlib.contextmanager
def _quiet_kineto() -> Iterator[None]:
    """Silence the profiler's `profiler_start`/`profiler_stop` lines on stderr (torch ≥ 2.12); level 6 is Kineto's
    "no logs", read when each message is logged."""
    old = os.environ.get("KINETO_LOG_LEVEL")
    os.environ["KINETO_LOG_LEVEL"] = "6"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("KINETO_LOG_LEVEL", None)
        else:
            os.environ["KINETO_LOG_LEVEL"] = old


def peak_allocated_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak bytes that `fn()` holds allocated at once on `device` (its result included), beyond what was allocated
    before. On a GPU the caching allocator's peak; on a CPU the profiler's record of every allocation and free of
    this thread, replayed in order.

    Kernels' internal buffers are included (a transposed convolution's columns), unlike a count of the tensors ops
    return; memory outside torch's allocator (some oneDNN scratch) is not, and callers add a margin for it.
    """
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    from torch.profiler import ProfilerActivity, profile

    with _quiet_kineto(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # The raw allocation events, as torch/autograd/profiler.py reads them: the per-op totals of prof.events() net out
    # what one op allocates and frees again, which would hide the peak.
    try:
        events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    except (AttributeError, RuntimeError):  # a private API (tested on torch 2.13): elsewhere, an upper bound
        return sum(max(0, e.cpu_memory_usage) for e in prof.events())
    now = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        if e.device_type() == torch.autograd.DeviceType.CPU:
            now += e.nbytes()
            peak = max(peak, now)
    return peak

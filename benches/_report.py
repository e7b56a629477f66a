"""Shared by the benches: the environment, a results table with ratios side by side, and JSON-lines results files.

Results go to benches/results/<bench>-<hostname>-<N>cpu.jsonl (git-ignored): the environment is in the file name.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"  # the team's shared Set5/Set14 and T91 copies beside the checkout
RESULTS = Path(__file__).resolve().parent / "results"


def environment() -> dict[str, Any]:
    import numpy
    import PIL
    import torch

    return {
        "host": socket.gethostname(),
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),  # others share the machine: read numbers with this in mind
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": numpy.__version__,
        "pillow": PIL.__version__,
    }


def best_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Best wall time of `fn` in seconds over `repeats` runs (the least disturbed by other processes)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[f"{c:.3g}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def save(bench: str, records: list[dict[str, Any]], env: dict[str, Any]) -> Path:
    """Append one JSON line per record (with the environment and a timestamp) to this machine's results file."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{bench}-{env['host']}-{env['cpus']}cpu.jsonl"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with open(path, "a", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps({"bench": bench, "time": stamp, **r, "env": env}) + "\n")
    return path

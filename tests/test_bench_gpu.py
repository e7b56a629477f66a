"""benches/bench_gpu.py is the one script a lent GPU runs (issue 15): kept working here by its --smoke mode, the same
code on this machine's device with tiny configs and a few steps."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_the_gpu_bench_runs_through_in_smoke_mode() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benches" / "bench_gpu.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    out = proc.stdout
    assert "fp32 NCHW" in out and "bf16 + channels-last" in out and "images/s" in out
    assert "paper profile:" in out and "hours of training" in out

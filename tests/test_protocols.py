"""Evaluation protocols: the memory scoring takes, which evaluate reserves before it picks a tile."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from srpipe.memory import peak_allocated_bytes
from srpipe.protocols import SCORE_BYTES_PER_PX, sr_and_score
from tests.conftest import synthetic_image


@pytest.mark.parametrize(("protocol", "color"), [("rgb", "rgb"), ("rgb", "y"), ("y-matlab", "y"), ("rgb-float", "rgb")])
def test_scoring_memory_stays_under_what_evaluate_reserves(protocol: str, color: str) -> None:
    side, scale = 512, 4
    hr = synthetic_image(0, side, side)

    def run(lr: Tensor, _color: str) -> Tensor:  # a float result of the right shape, allocated as a network's is
        channels = lr.shape[1] if protocol == "y-matlab" else 3
        return torch.rand(1, channels, lr.shape[-2] * scale, lr.shape[-1] * scale)

    cpu = torch.device("cpu")
    peak = peak_allocated_bytes(lambda: sr_and_score(protocol, hr, False, scale, run, color, cpu), cpu)
    assert 100 < peak / side**2 <= SCORE_BYTES_PER_PX  # 170-187 measured for 256-1536 px

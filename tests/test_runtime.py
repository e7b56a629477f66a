"""srpipe.runtime: which precision runs where, and the image convolutions kept fp32 under bf16 autocast."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from srpipe import runtime
from srpipe.models import create_model


def test_precision_names_map_to_dtypes(monkeypatch):
    cpu = torch.device("cpu")
    assert runtime.amp_dtype(cpu, "fp32") is None
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    assert runtime.amp_dtype(cpu, "auto") is torch.bfloat16
    assert runtime.amp_dtype(cpu, "bf16") is torch.bfloat16
    with pytest.raises(ValueError, match="precision must be one of"):
        runtime.amp_dtype(cpu, "fp16")


def test_a_cpu_without_native_bf16_runs_fp32_and_refuses_a_forced_bf16(monkeypatch):
    """Emulated bf16 is slower than fp32: auto never picks it, and asking for it says why it is refused."""
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    cpu = torch.device("cpu")
    assert runtime.amp_dtype(cpu, "auto") is None
    with pytest.raises(ValueError, match="no native bf16"):
        runtime.amp_dtype(cpu, "bf16")


class _OutOfOrder(nn.Module):
    """Modules registered in a different order from the one forward runs them; one 64 → 1 image reconstruction."""

    def __init__(self) -> None:
        super().__init__()
        self.late = nn.Conv2d(8, 8, 3, padding=1)
        self.to_image = nn.Conv2d(8, 1, 3, padding=1)
        self.wide = nn.Conv2d(8, 8, 3, padding=1)
        self.second = nn.Conv2d(8, 8, 3, padding=1)
        self.first = nn.Conv2d(1, 8, 3, padding=1)
        self.out = nn.Conv2d(8, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.late(self.wide(self.second(self.first(x))))
        return self.out(f + self.to_image(f))


def test_image_convs_are_found_in_run_order():
    net = _OutOfOrder()
    found = runtime.image_convs(net, 1, torch.device("cpu"))
    assert found == [net.first, net.second, net.out, net.to_image]  # first two run, the last, the one-channel one


def test_pinned_convs_run_fp32_inside_autocast_and_autocast_survives_an_error():
    net = _OutOfOrder()
    runtime.pin_fp32([net.first])
    dtypes = {}
    for name in ("first", "second"):
        getattr(net, name).register_forward_hook(lambda m, a, out, name=name: dtypes.__setitem__(name, out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        net(torch.rand(1, 1, 8, 8))
        assert dtypes == {"first": torch.float32, "second": torch.bfloat16}
        with pytest.raises(RuntimeError):
            net.first(torch.rand(1, 3, 8, 8))  # wrong channel count: raises inside the pinned module
        assert torch.is_autocast_enabled("cpu")


def test_a_network_without_weights_always_runs_fp32(monkeypatch):
    """Bicubic is the baseline every row is measured against: never rounded to bf16."""
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    cpu = torch.device("cpu")
    assert runtime.for_inference(create_model("bicubic", 2), cpu, "auto")[1] is None
    assert runtime.for_inference(create_model("espcn", 2, "tiny"), cpu, "auto")[1] is torch.bfloat16

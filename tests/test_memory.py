"""Memory sizes, the default cap, and the allocation peak that tiled inference plans from."""

from __future__ import annotations

import pytest
import torch

from srpipe import memory
from srpipe.memory import format_size, memory_cap, parse_size, peak_allocated_bytes, rss_bytes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2GB", 2 * 10**9),
        ("2gb", 2 * 10**9),
        ("1.5G", 1_500_000_000),
        ("512MiB", 512 * 2**20),
        ("750 m", 750 * 10**6),
        ("3GiB", 3 * 2**30),
        ("123456", 123456),
        (4096, 4096),
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "two GB", "2 GBs", "-1GB", "0", "2iB", "1e9"])
def test_parse_size_refuses_what_is_not_a_size(text: str) -> None:
    with pytest.raises(ValueError, match="not a memory size"):
        parse_size(text)


def test_format_size_reads_back() -> None:
    assert format_size(1_234_000_000) == "1.23 GB"
    assert format_size(999) == "999 B"
    assert abs(parse_size(format_size(2_500_000).replace(" ", "")) - 2_500_000) < 10_000


def test_the_default_cap_is_what_the_process_holds_plus_a_share_of_the_free_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert memory_cap("3GB") == 3 * 10**9
    monkeypatch.setattr(memory, "available_bytes", lambda: 10 * 10**9)
    monkeypatch.setattr(memory, "rss_bytes", lambda: 10**9)
    assert memory_cap() == 10**9 + int(memory.DEFAULT_FRACTION * 10 * 10**9)
    monkeypatch.setattr(memory, "available_bytes", lambda: None)
    assert memory_cap() is None  # nothing known: no cap rather than a made-up one


def test_rss_is_the_resident_memory_now() -> None:
    before = rss_bytes()
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
    assert rss_bytes() - before > 48 * 2**20
    del block


def test_peak_counts_what_is_held_at_once_including_inside_an_op() -> None:
    cpu = torch.device("cpu")

    def work() -> torch.Tensor:
        a = torch.ones(2**20)  # 4 MiB
        b = torch.ones(2**21)  # 8 MiB, while a lives: 12 MiB
        del a
        return b + 1  # 8 + 8 MiB

    assert abs(peak_allocated_bytes(work, cpu) - 16 * 2**20) < 2**20
    x = torch.rand(1, 16, 64, 64)
    conv = torch.nn.ConvTranspose2d(16, 16, 3, stride=2)
    with torch.inference_mode():
        out_bytes = conv(x).numel() * 4
        # The transposed convolution's own column buffer is part of the peak, not only its output.
        assert peak_allocated_bytes(lambda: conv(x), cpu) > 1.5 * out_bytes

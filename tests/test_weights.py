"""Weights files: the card's digest is written and checked, so corrupt tensors are refused with how to rebuild them
(issue 14 item 4a: 64 flipped bytes made `srpipe evaluate` score 24 dB with exit status 0), and old files still load."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srpipe.cli import main
from srpipe.integrity import CorruptDataError
from srpipe.models import create_model
from srpipe.released import ORIGIN_RELEASED, load_released
from srpipe.weights import WeightsCard, load_model, read_card, save_weights, state_digest


def _flip(path: Path, tensor: torch.Tensor, count: int = 64) -> None:
    """Invert `count` bytes in the middle of `tensor`'s data inside the saved file, as a bad disk or copy would."""
    raw = bytearray(path.read_bytes())
    data = tensor.contiguous().numpy().tobytes()
    at = raw.find(data)
    assert at >= 0 and raw.find(data, at + 1) < 0, "the tensor's bytes should appear once, uncompressed"
    middle = at + len(data) // 2
    raw[middle : middle + count] = bytes(b ^ 0xFF for b in raw[middle : middle + count])
    path.write_bytes(bytes(raw))


def _saved(tmp_path: Path, **card: str) -> tuple[Path, dict[str, torch.Tensor]]:
    path = tmp_path / "models" / "edsr_x2.pt"
    state = create_model("edsr", 2, "tiny").state_dict()
    save_weights(path, WeightsCard("edsr", 2, "tiny", "rgb", **card), state)
    return path, state


def _largest(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return max(state.values(), key=lambda t: t.numel())


def test_save_records_the_digest_and_load_verifies_it(tmp_path: Path) -> None:
    path, state = _saved(tmp_path)
    card, _ = read_card(path)
    assert card.digest == state_digest(state) and card.digest.startswith("sha256:")
    net, _ = load_model(path, "edsr", 2)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())


def test_digest_changes_with_any_value_name_or_shape() -> None:
    state = {"a": torch.arange(6.0), "b": torch.ones(2, 3)}
    base = state_digest(state)
    assert state_digest(dict(reversed(state.items()))) == base  # key order does not matter
    assert state_digest({**state, "a": state["a"].clone().index_fill_(0, torch.tensor([5]), 7.0)}) != base
    assert state_digest({"c": state["a"], "b": state["b"]}) != base
    assert state_digest({"a": state["a"].reshape(2, 3), "b": state["b"]}) != base


def test_flipped_bytes_in_a_tensor_are_refused_naming_the_file_and_how_to_rebuild(tmp_path: Path) -> None:
    path, state = _saved(tmp_path)
    _flip(path, _largest(state))
    with pytest.raises(CorruptDataError) as err:
        load_model(path, "edsr", 2)
    msg = str(err.value)
    assert str(path) in msg and "corrupt" in msg
    assert f"srpipe train --model edsr --scale 2 --out {path}" in msg and f"dvc checkout {path}" in msg


def test_corrupt_released_weights_say_to_reimport_their_catalog_entry(tmp_path: Path) -> None:
    entry = next(e for e in load_released()[0].values() if e.checksum)
    path, state = _saved(tmp_path, origin=ORIGIN_RELEASED, source_sha256=entry.checksum.removeprefix("sha256:"))
    _flip(path, _largest(state))
    with pytest.raises(CorruptDataError, match=rf"re-import it with `srpipe import --released {entry.name}`"):
        read_card(path)


def test_evaluate_exits_2_with_one_line_instead_of_a_lower_score(tmp_path: Path, caplog) -> None:
    path, state = _saved(tmp_path)
    _flip(path, _largest(state))
    hr = tmp_path / "hr"
    hr.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(hr / "a.png")
    argv = ["evaluate", "--model", "edsr", "--scale", "2", "--weights", str(path), "--hr-dir", str(hr)]
    assert main([*argv, "--no-progress", "--json", str(tmp_path / "out.json")]) == 2
    assert "the weights are corrupt" in caplog.text and not (tmp_path / "out.json").exists()


def test_files_without_a_digest_load_unverified_with_one_warning(tmp_path: Path, caplog) -> None:
    state = create_model("edsr", 2, "tiny").state_dict()
    card = {"model": "edsr", "scale": 2, "config": "tiny", "color": "rgb"}  # as written before digests existed
    old = tmp_path / "old.pt"
    torch.save({"format": "srpipe-weights/1", "card": card, "state_dict": state}, old)
    with caplog.at_level(logging.WARNING, logger="srpipe.weights"):
        load_model(old, "edsr", 2)
        load_model(old, "edsr", 2)
    assert caplog.text.count("loaded unverified") == 1 and str(old) in caplog.text

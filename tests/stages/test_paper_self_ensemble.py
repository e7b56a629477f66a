"""RED30's published figures come from the authors' test code, which averages the 8 flips/rotations: the paper
profile evaluates that row the same way (evaluate.self_ensemble_models), and the JSON and leaderboard say so."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from srpipe.config import EvaluateParams, load_params
from srpipe.context import QUIET
from srpipe.leaderboard.report import notes
from srpipe.models import create_model, get_card
from srpipe.stages.evaluate import evaluate
from srpipe.weights import WeightsCard, save_weights

ROOT = Path(__file__).resolve().parents[2]


def _setup(tmp_path: Path, model: str) -> tuple[Path, dict[str, Path]]:
    torch.manual_seed(0)
    weights = tmp_path / f"{model}_x2.pt"
    save_weights(weights, WeightsCard(model, 2, "tiny", "rgb"), create_model(model, 2, "tiny").state_dict())
    hr = tmp_path / "hr"
    hr.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(hr / "img.png")
    return weights, {"toy": hr}


def test_models_listed_are_evaluated_with_the_self_ensemble_and_say_so(tmp_path: Path) -> None:
    weights, data = _setup(tmp_path, "red30")
    params = EvaluateParams(self_ensemble_models=("red30",), latency_repeats=1)
    result = evaluate("red30", 2, data, params, weights, tmp_path / "red30_x2.json", ctx=QUIET)
    saved = json.loads((tmp_path / "red30_x2.json").read_text())
    assert result["self_ensemble"] is saved["self_ensemble"] is True
    assert saved["published_self_ensemble"] is True
    plain = evaluate("red30", 2, data, EvaluateParams(latency_repeats=1), weights, ctx=QUIET)
    assert plain["self_ensemble"] is False
    assert plain["psnr"] != result["psnr"]  # the 8 passes really ran


def test_leaderboard_notes_compare_like_with_like() -> None:
    row = {"model": "red30", "config": "paper", "train_iterations": None, "train_color": "y", "train_note": ""}
    assert "x8 self-ensemble, as the published figure" in notes({**row, "self_ensemble": True})
    assert "the published figure uses the x8 self-ensemble" in notes({**row, "self_ensemble": False})
    edsr = {**row, "model": "edsr", "train_color": "rgb"}
    assert "the published figure is without" in notes({**edsr, "self_ensemble": True})
    assert "self-ensemble" not in notes({**edsr, "self_ensemble": False})


def test_red30_card_and_paper_profile() -> None:
    assert get_card("red30").published_self_ensemble and not get_card("edsr").published_self_ensemble
    assert load_params(ROOT / "params-paper.yaml").evaluate.self_ensemble_models == ("red30",)

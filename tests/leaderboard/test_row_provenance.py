"""Every row says what stands behind its number: the paper figure for its training data, the recipe it was trained
with, or the authors' released weights (and, when those could not be fetched, why the row is missing)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from srpipe.config import EvaluateParams, PipelineParams
from srpipe.leaderboard.report import markdown, metrics
from srpipe.leaderboard.table import build_rows, load_evaluations, skipped_released
from srpipe.released import get_released


def _ev(model: str, scale: int = 3, psnr: float = 32.0, **train: Any) -> dict[str, Any]:
    released = train.pop("released", None)
    ev = {
        "model": model,
        "scale": scale,
        "config": "paper",
        "weights": f"{model}.pt",
        "protocol": "y-matlab",
        "datasets": {"Set5": {"psnr": psnr, "ssim": 0.9, "images": []}},
        "train": {"iterations": 100, "color": "y", **train},
    }
    return ev | ({"released": released} if released else {})


ADAM = {"optimizer": "adam", "lr": 0.001, "schedule": "cosine", "batch_size": 32, "patch_size": 33, "lr_patch": None}


def test_a_model_trained_on_t91_is_held_against_the_papers_t91_figure_and_declares_its_recipe() -> None:
    (row,) = build_rows([_ev("srcnn", data=["T91"], recipe=ADAM)])
    # SRCNN ECCV'14 Table 1: 32.39 dB at x3 on Set5 for the 91-image model (9-1-5), not the ImageNet 32.75.
    assert (row["published_psnr"], row["published_training"], row["training_data"]) == (32.39, "T91", "T91")
    assert row["gap_psnr"] == pytest.approx(32.0 - 32.39)
    # SRCNN's paper recipe: SGD, constant rate 1e-4, batch 128 (models/srcnn.py); the row names each difference.
    assert row["train_recipe"] == (
        "adam lr 0.001 cosine, batch 32, HR patch 33; paper: sgd, lr 0.0001, constant, batch 128"
    )
    assert "recipe adam lr 0.001" in markdown([row]) and "the paper's T91 model" in markdown([row])


def test_the_papers_own_recipe_says_so_and_other_data_keeps_the_headline_figure() -> None:
    from srpipe.models import get_card

    paper = dataclasses.asdict(get_card("srcnn").recipe)
    (row,) = build_rows([_ev("srcnn", data=["DIV2K"], recipe=paper)])
    assert row["train_recipe"].endswith("(the paper's)")
    assert (row["published_psnr"], row["published_training"]) == (32.75, None)


def test_released_rows_sit_beside_trained_ones_each_under_its_catalog_name() -> None:
    rel = {"origin": "released"}
    evals = [
        _ev("srcnn", psnr=32.1, data=["T91"], recipe=ADAM),
        _ev("srcnn", psnr=32.39, **rel, training_data="T91 (91 images)", released="srcnn_915_91images_x3"),
        _ev("srcnn", psnr=32.75, **rel, training_data="ImageNet (395,909 images)", released="srcnn_955_imagenet_x3"),
    ]
    rows = {r["released"]: r for r in build_rows(evals)}
    assert rows["srcnn_915_91images_x3"]["published_psnr"] == 32.39  # the 91-image file against the 91-image figure
    assert rows["srcnn_955_imagenet_x3"]["published_psnr"] == 32.75  # the ImageNet file against the headline figure
    assert all(r["train_recipe"] is None for k, r in rows.items() if k)
    shown = set(metrics(list(rows.values()))["x3"]["Set5"])
    assert shown == {"srcnn", "srcnn_915_91images (released)", "srcnn_955_imagenet (released)"}


def test_skipped_released_weights_are_listed_with_their_reason_and_have_no_row(tmp_path: Path) -> None:
    (tmp_path / "srcnn_x3.json").write_text(json.dumps(_ev("srcnn", data=["T91"])))
    skip = {"released": "vdsr_x3", "model": "vdsr", "scale": 3, "skipped": "released vdsr_x3 is unavailable: offline"}
    (tmp_path / "released_vdsr_x3.json").write_text(json.dumps(skip))
    other = _ev("srcnn", origin="released", released="srcnn_915_91images_x3")
    (tmp_path / "released_srcnn_915_91images_x3.json").write_text(json.dumps(other))
    include = [("srcnn", 3), ("vdsr", 3)]
    evals = load_evaluations(tmp_path, include, released=["vdsr_x3"])  # srcnn_915 is not in this pipeline: left out
    assert [ev.get("released") for ev in evals] == [None]
    skipped = skipped_released(tmp_path, include, ["vdsr_x3"])
    assert skipped == {"vdsr_x3": skip["skipped"]}
    assert "- `vdsr_x3`: released vdsr_x3 is unavailable: offline" in markdown(build_rows(evals), skipped)


def test_evaluate_released_without_a_reachable_copy_records_the_reason(tmp_path: Path, monkeypatch) -> None:
    import srpipe.released
    import srpipe.stages.import_weights
    from srpipe.stages.evaluate import evaluate_released

    monkeypatch.delenv("SRPIPE_MIRRORS", raising=False)
    entry = get_released("srcnn_955_imagenet_x3")
    offline = dataclasses.replace(entry, urls=((tmp_path / "no-server").as_uri() + "/x3.mat",))  # never the network
    for module in (srpipe.released, srpipe.stages.import_weights):
        monkeypatch.setattr(module, "get_released", lambda name: offline)
    out = tmp_path / "eval" / "released_srcnn_955_imagenet_x3.json"
    result = evaluate_released(
        entry.name, {}, EvaluateParams(), tmp_path / "w", [str(tmp_path / "empty")], out_json=out
    )
    assert result["skipped"] and "srcnn_955_imagenet_x3.mat" in result["skipped"]
    assert json.loads(out.read_text()) == result and not (tmp_path / "w" / f"{entry.name}.pt").exists()


def test_unknown_released_names_fail_before_any_work() -> None:
    with pytest.raises(KeyError, match="srcnn_955_imagenet_x2"):
        PipelineParams(models=("srcnn",), released=("srcnn_x9",)).check_models()

"""The leaderboard's long table: evaluation JSONs in, one row per model × scale × dataset out, with a fixed schema.

`SCHEMA` is the contract with every reader of leaderboard.parquet (documented in docs/leaderboard-schema.md): columns
keep their names, order and types, and new ones are only appended. The explicit Arrow types keep a column's dtype
stable when every value in it is null (no trained model yet → `train_iterations` is still int64, not null-typed).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from srpipe.leaderboard.published import lookup, training_key
from srpipe.models import get_card

log = logging.getLogger(__name__)

_S, _I, _F = pa.string(), pa.int64(), pa.float64()
SCHEMA = pa.schema(
    [
        *[("model", _S), ("paper", _S), ("year", _I), ("config", _S), ("scale", _I), ("dataset", _S)],
        *[("psnr", _F), ("ssim", _F), ("psnr_rgb", _F), ("n_images", _I)],
        *[("published_psnr", _F), ("published_ssim", _F), ("published_source", _S), ("published_status", _S)],
        *[("gap_psnr", _F), ("gap_ssim", _F), ("gain_psnr_over_bicubic", _F)],
        *[("params", _I), ("flops", _I), ("flops_input", _S), ("latency_ms", _F), ("peak_memory_mb", _F)],
        *[("device", _S), ("self_ensemble", pa.bool_())],
        *[("train_iterations", _I), ("train_seconds", _F), ("train_note", _S), ("train_color", _S)],
        *[("weights_sha256", _S), ("git_commit", _S), ("mlflow_run_id", _S), ("eval_mlflow_run_id", _S)],
        # appended with released weights: where the weights come from, and how the row was measured
        *[("source", _S), ("protocol", _S), ("weights_source", _S), ("training_data", _S)],
        # appended with the repro profile: which paper figure the row is held against, and how it was trained
        *[("published_training", _S), ("train_recipe", _S), ("released", _S)],
    ]
)


class EvaluationError(ValueError):
    """An evaluation JSON cannot be used; the message names the file."""


def label(model: str, self_ensemble: bool, source: str | None = None, released: str | None = None) -> str:
    """The name a row is shown under: EDSR's "+" marks the x8 self-ensemble, " (released)" the authors' weights,
    named by their catalog entry without its scale when it says more than the model (SRCNN's 9-1-5 on 91 images)."""
    name = re.sub(r"_x\d+$", "", released or "") or model
    return name + ("+" if self_ensemble else "") + (" (released)" if source == "released" else "")


def row_label(r: Mapping[str, Any]) -> str:
    """`label` of a leaderboard row."""
    return label(r["model"], r["self_ensemble"], r.get("source"), r.get("released"))


def _problem(ev: Any) -> str | None:
    if not isinstance(ev, dict):
        return "not a JSON object"
    if not isinstance(ev.get("model"), str) or type(ev.get("scale")) is not int:
        return "needs a string 'model' and an integer 'scale'"
    if not isinstance(ev.get("datasets"), dict) or not ev["datasets"]:
        return "needs a non-empty 'datasets' object"
    for name, d in ev["datasets"].items():
        if not isinstance(d, dict) or not all(isinstance(d.get(k), (int, float)) for k in ("psnr", "ssim")):
            return f"datasets.{name} needs numeric 'psnr' and 'ssim'"
    return None


def _finite(ev: dict[str, Any], path: Path) -> dict[str, Any] | None:
    """`ev` without the datasets whose PSNR or SSIM is NaN or infinite (an empty folder, a broken model), each
    dropped with a warning naming the file; None if none is left. A nan row would rank and plot as a number."""
    bad = [name for name, d in ev["datasets"].items() if not all(math.isfinite(d[k]) for k in ("psnr", "ssim"))]
    for name in bad:
        log.warning("leaderboard: %s: %s has a non-finite PSNR/SSIM (re-run its evaluation): left out", path, name)
    if len(bad) == len(ev["datasets"]):
        return None
    return {**ev, "datasets": {k: v for k, v in ev["datasets"].items() if k not in bad}} if bad else ev


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EvaluationError(f"{path}: not a readable evaluation JSON ({e})") from e


def _wanted(ev: Mapping[str, Any], include: Collection[tuple[str, int]] | None, released: Collection[str]) -> bool:
    if include is None:
        return True
    return ev["released"] in released if ev.get("released") else (ev["model"], ev["scale"]) in include


def skipped_released(
    eval_dir: Path, include: Collection[tuple[str, int]] | None = None, released: Collection[str] = ()
) -> dict[str, str]:
    """Released weights the pipeline could not evaluate (no copy reachable): catalog name → the reason."""
    found = (_read(p) for p in sorted(Path(eval_dir).glob("*.json")))
    return {
        ev["released"]: ev["skipped"]
        for ev in found
        if isinstance(ev, dict) and ev.get("skipped") and _wanted(ev, include, released)
    }


def load_evaluations(
    eval_dir: Path, include: Collection[tuple[str, int]] | None = None, released: Collection[str] = ()
) -> list[dict[str, Any]]:
    """Every `*.json` directly in `eval_dir`, by file name; a malformed or duplicate one raises naming the file.

    With `include`, only those (model, scale) pairs and the `released` catalog entries: evaluations left behind by
    models no longer in the pipeline are logged and left out rather than passed off as current. A released entry
    that was skipped (see `skipped_released`) has no row.
    """
    if not Path(eval_dir).is_dir():
        raise FileNotFoundError(f"leaderboard: {eval_dir} is not a folder of evaluation JSONs")
    evals: list[dict[str, Any]] = []
    seen: dict[tuple[str, int, bool], Path] = {}
    for path in sorted(Path(eval_dir).glob("*.json")):
        ev = _read(path)
        if isinstance(ev, dict) and ev.get("skipped"):
            continue
        if problem := _problem(ev):
            raise EvaluationError(f"{path}: {problem}")
        if not (ev := _finite(ev, path)):
            continue
        if not _wanted(ev, include, released):
            log.info("leaderboard: %s is not part of this pipeline: left out", path)
            continue
        origin = (ev.get("train") or {}).get("origin") if ev.get("weights") else None
        # Released rows sit beside trained ones, each catalog entry its own (SRCNN 9-5-5 ImageNet and 9-1-5 91 images)
        key = (ev["model"], ev["scale"], bool(ev.get("self_ensemble")), origin, ev.get("released"))
        if key in seen:  # two rows for one key would make "the" number of a model ambiguous
            name = label(ev["model"], key[2], key[3], key[4])
            raise EvaluationError(f"{path} and {seen[key]} both evaluate {name} x{key[1]}")
        seen[key] = path
        evals.append(ev)
    if not evals:
        raise EvaluationError(f"{eval_dir}: no evaluation JSONs (run `srpipe evaluate --json ...` first)")
    return evals


def dataset_order(evals: Sequence[Mapping[str, Any]]) -> list[str]:
    """Datasets in first-seen order over the evaluations; the first is the primary one (champions, cost figure)."""
    return list(dict.fromkeys(name for ev in evals for name in ev["datasets"]))


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


# The recipe fields a reader needs to judge how a number was obtained, in the order they are shown.
_RECIPE_FIELDS = ("optimizer", "lr", "schedule", "batch_size", "patch")


def _recipe_facts(recipe: Mapping[str, Any], scale: int) -> dict[str, Any]:
    lr_patch = recipe.get("lr_patch")
    return {k: recipe.get(k) for k in _RECIPE_FIELDS[:-1]} | {
        "patch": lr_patch * scale if lr_patch else recipe.get("patch_size")
    }


def recipe_summary(recipe: Mapping[str, Any] | None, scale: int, card: Any) -> str | None:
    """How a trained row was trained, e.g. "adam lr 0.001 cosine, batch 32, HR patch 33; paper: sgd, constant, batch
    128" — the fields that differ from the paper's recipe (the model card's) are named, so a CPU recipe is declared."""
    if not recipe:
        return None
    own = _recipe_facts(recipe, scale)
    text = f"{own['optimizer']} lr {own['lr']:g} {own['schedule']}, batch {own['batch_size']}, HR patch {own['patch']}"
    if card is None:
        return text
    paper = _recipe_facts(dataclasses.asdict(card.recipe), scale)
    if differs := [k for k in _RECIPE_FIELDS if own[k] != paper[k]]:
        shown = {"lr": f"lr {paper['lr']:g}", "batch_size": f"batch {paper['batch_size']}"}
        shown |= {"patch": f"HR patch {paper['patch']}"}
        return text + "; paper: " + ", ".join(shown.get(k, str(paper[k])) for k in differs)
    return text + " (the paper's)"


def _training_data(learned: tuple[str, ...], rescale: Sequence[float] | None) -> str | None:
    """The training data as a row shows it: "T91", or "T91 + copies downscaled by 0.9/0.8/0.7/0.6" (FSRCNN)."""
    if not learned:
        return None
    copies = f" + copies downscaled by {'/'.join(f'{f:g}' for f in rescale)}" if rescale else ""
    return training_key(learned) + copies


def _row(ev: Mapping[str, Any], dataset: str, d: Mapping[str, Any], card: Any) -> dict[str, Any]:
    train = ev.get("train") or {}
    released = train.get("origin") == "released"
    # A model trained here on e.g. T91 is held against the paper's own figure for that data where one exists; so are
    # released weights, whose catalog training_data starts with the dataset's name ("T91 (91 images)", "ImageNet ...").
    if released:
        learned: tuple[str, ...] = tuple((train.get("training_data") or "").split()[:1])
    else:
        learned = tuple(train.get("data") or ())
    fig = lookup(ev["model"], ev["scale"], dataset, learned)
    pub_psnr, pub_ssim = (fig.psnr, fig.ssim) if fig else (None, None)
    return {
        "model": ev["model"],
        "paper": card.paper if card else None,
        "year": card.year if card else None,
        "config": ev.get("config"),
        "scale": ev["scale"],
        "dataset": dataset,
        "psnr": d["psnr"],
        "ssim": d["ssim"],
        "psnr_rgb": d.get("psnr_rgb"),
        "n_images": len(d.get("images") or []),
        "published_psnr": pub_psnr,
        "published_ssim": pub_ssim,
        "published_source": fig.source if fig else None,
        "published_status": fig.status if fig else None,
        "gap_psnr": _diff(d["psnr"], pub_psnr),
        "gap_ssim": _diff(d["ssim"], pub_ssim),
        "gain_psnr_over_bicubic": None,  # set by build_rows once every bicubic row is known
        **{k: ev.get(k) for k in ("params", "flops", "flops_input", "latency_ms", "peak_memory_mb", "device")},
        "self_ensemble": bool(ev.get("self_ensemble")),
        "train_iterations": train.get("iterations"),
        "train_seconds": train.get("seconds"),
        "train_note": train.get("note") or None,
        "train_color": train.get("color"),
        "weights_sha256": ev.get("weights_sha256"),
        "git_commit": ev.get("git_commit") or None,
        "mlflow_run_id": train.get("mlflow_run_id") or None,  # "" means tracking was off: null, not a string
        "eval_mlflow_run_id": ev.get("mlflow_run_id") or None,
        # "released": the authors' checkpoint (the gap then measures srpipe's architecture + evaluator against the
        # paper); "trained here": srpipe's own training; null for bicubic, which has no weights.
        "source": (train.get("origin") or "trained here") if ev.get("weights") else None,
        "protocol": ev.get("protocol") or "rgb",
        "weights_source": train.get("source") or None,
        "training_data": train.get("training_data") or _training_data(learned, train.get("rescale")),
        "published_training": (fig.training or None) if fig else None,
        "train_recipe": None if released else recipe_summary(train.get("recipe"), ev["scale"], card),
        "released": ev.get("released"),
    }


def build_rows(evals: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The long table as dicts in SCHEMA order, sorted by scale, dataset (evaluation order), then PSNR descending."""
    rows = []
    for ev in evals:
        try:
            card = get_card(ev["model"])
        except KeyError:  # an evaluation of a model since renamed: keep its numbers, lose its paper facts
            log.warning("leaderboard: %s is not a registered model; no paper facts for it", ev["model"])
            card = None
        rows += [_row(ev, dataset, d, card) for dataset, d in ev["datasets"].items()]
    base = {(r["scale"], r["dataset"]): r["psnr"] for r in rows if r["model"] == "bicubic" and not r["self_ensemble"]}
    for r in rows:
        r["gain_psnr_over_bicubic"] = _diff(r["psnr"], base.get((r["scale"], r["dataset"])))
    order = {name: i for i, name in enumerate(dataset_order(evals))}
    rows.sort(key=lambda r: (r["scale"], order[r["dataset"]], -r["psnr"], r["model"], r["self_ensemble"]))
    return rows


def to_arrow(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=SCHEMA)


def champions(rows: Sequence[Mapping[str, Any]], dataset: str) -> dict[int, Mapping[str, Any]]:
    """Per scale, the best row on `dataset` among models with a training run to register (bicubic never has one)."""
    best: dict[int, Mapping[str, Any]] = {}
    for r in rows:
        eligible = r["dataset"] == dataset and r["mlflow_run_id"] and r["model"] != "bicubic"
        if eligible and (r["scale"] not in best or r["psnr"] > best[r["scale"]]["psnr"]):
            best[r["scale"]] = r
    return best

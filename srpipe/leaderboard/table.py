"""The leaderboard's long table: evaluation JSONs in, one row per model × scale × dataset out, with a fixed schema.

`SCHEMA` is the contract with every reader of leaderboard.parquet (documented in docs/leaderboard-schema.md): columns
keep their names, order and types, and new ones are only appended. The explicit Arrow types keep a column's dtype
stable when every value in it is null (no trained model yet → `train_iterations` is still int64, not null-typed).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from srpipe.leaderboard.published import lookup
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
    ]
)


class EvaluationError(ValueError):
    """An evaluation JSON cannot be used; the message names the file."""


def label(model: str, self_ensemble: bool, source: str | None = None) -> str:
    """The name a row is shown under: EDSR's "+" marks the x8 self-ensemble, " (released)" the authors' weights."""
    return model + ("+" if self_ensemble else "") + (" (released)" if source == "released" else "")


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


def load_evaluations(eval_dir: Path, include: Collection[tuple[str, int]] | None = None) -> list[dict[str, Any]]:
    """Every `*.json` directly in `eval_dir`, by file name; a malformed or duplicate one raises naming the file.

    With `include`, only those (model, scale) pairs: evaluations left behind by models no longer in the pipeline
    are logged and left out rather than passed off as current.
    """
    if not Path(eval_dir).is_dir():
        raise FileNotFoundError(f"leaderboard: {eval_dir} is not a folder of evaluation JSONs")
    evals: list[dict[str, Any]] = []
    seen: dict[tuple[str, int, bool], Path] = {}
    for path in sorted(Path(eval_dir).glob("*.json")):
        try:
            ev = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise EvaluationError(f"{path}: not a readable evaluation JSON ({e})") from e
        if problem := _problem(ev):
            raise EvaluationError(f"{path}: {problem}")
        if not (ev := _finite(ev, path)):
            continue
        if include is not None and (ev["model"], ev["scale"]) not in include:
            log.info("leaderboard: %s is not part of this pipeline: left out", path)
            continue
        origin = (ev.get("train") or {}).get("origin") if ev.get("weights") else None
        key = (ev["model"], ev["scale"], bool(ev.get("self_ensemble")), origin)  # released rows sit beside trained
        if key in seen:  # two rows for one key would make "the" number of a model ambiguous
            raise EvaluationError(f"{path} and {seen[key]} both evaluate {label(*key[:1], key[2], key[3])} x{key[1]}")
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


def _row(ev: Mapping[str, Any], dataset: str, d: Mapping[str, Any], card: Any) -> dict[str, Any]:
    fig = lookup(ev["model"], ev["scale"], dataset)
    pub_psnr, pub_ssim = (fig.psnr, fig.ssim) if fig else (None, None)
    train = ev.get("train") or {}
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
        "training_data": train.get("training_data") or None,
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

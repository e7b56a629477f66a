"""Stage `leaderboard`: every evaluation JSON → one long table, a row per model × scale × dataset, beside the papers.

Writes into `out_dir`, each file atomically (temp file + rename, so concurrent runs never leave a torn file and the
last one wins): `leaderboard.parquet` (schema: docs/leaderboard-schema.md), `LEADERBOARD.md`, `leaderboard.json`
(scale → dataset → model → PSNR/SSIM/gap, for `dvc metrics`), `psnr_vs_cost.png` and `visual_<dataset>.png`.
With a tracking URI they become artifacts of an MLflow run "leaderboard", and the best trained model per scale is
registered as `srpipe-x<scale>` with the alias `champion`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from srpipe.config import LeaderboardParams
from srpipe.context import DEFAULT, Context
from srpipe.fsio import atomic_path, write_json, write_text
from srpipe.leaderboard.report import markdown, metrics
from srpipe.leaderboard.table import (
    build_rows,
    champions,
    dataset_order,
    load_evaluations,
    skipped_released,
    to_arrow,
)
from srpipe.provenance import git_commit
from srpipe.tracking import start_run

log = logging.getLogger(__name__)


def _plots(
    rows: list[dict[str, Any]],
    evals: list[dict[str, Any]],
    eval_dir: Path,
    out_dir: Path,
    crop: int,
    raw_dir: Path | None,
) -> list[Path]:
    try:
        from srpipe.leaderboard import plots
    except ImportError as e:  # matplotlib is a dependency, but a slimmed-down environment may lack it
        log.warning("leaderboard: plots skipped (%s); install them with: pip install 'matplotlib>=3.8'", e)
        return []
    datasets = dataset_order(evals)
    written = []
    if plots.psnr_vs_cost(rows, datasets[0], out_dir / "psnr_vs_cost.png"):
        written.append(out_dir / "psnr_vs_cost.png")
    else:
        log.info("leaderboard: only bicubic was evaluated on %s: psnr_vs_cost.png skipped", datasets[0])
    for dataset in datasets:
        path = plots.visual_from_evaluations(evals, dataset, eval_dir / "images", raw_dir, crop, out_dir)
        written += [path] if path else []
    return written


def register_champion(client: Any, row: Mapping[str, Any], dataset: str) -> str:
    """Register `row`'s training weights (`runs:/<run>/weights`) as srpipe-x<scale>, alias `champion`; its version.

    A version already made from the same run is reused, so re-running the leaderboard does not pile up versions.
    """
    from mlflow.exceptions import MlflowException

    name, run_id = f"srpipe-x{row['scale']}", row["mlflow_run_id"]
    try:
        client.create_registered_model(name, description=f"Best srpipe model at x{row['scale']} (PSNR on {dataset})")
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":  # another leaderboard run may have created it: fine
            raise
    versions = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    if versions:
        version = str(max(int(v.version) for v in versions))
    else:
        tags = {"model": row["model"], "scale": str(row["scale"]), "dataset": dataset, "psnr": f"{row['psnr']:.4f}"}
        version = str(client.create_model_version(name, f"runs:/{run_id}/weights", run_id=run_id, tags=tags).version)
    client.set_registered_model_alias(name, "champion", version)
    log.info(
        "leaderboard: %s v%s = %s (%.3f dB on %s) is the champion", name, version, row["model"], row["psnr"], dataset
    )
    return version


def _track(
    files: list[Path],
    best: Mapping[int, Mapping[str, Any]],
    primary: str,
    ctx: Context,
    register: bool,
) -> tuple[str, dict[int, str]]:
    """The MLflow run "leaderboard" (best PSNR per scale, the files as artifacts); (run id, champion versions)."""
    tags = {"srpipe.stage": "leaderboard", "git_commit": git_commit()}
    tracker = start_run(ctx.tracking_uri, ctx.experiment, "leaderboard", tags=tags, parent=ctx.parent_run_id)
    try:
        tracker.metrics({f"x{s}_{primary}_best_psnr": r["psnr"] for s, r in best.items()}, step=0)
        for f in files:
            tracker.artifact(f, "leaderboard")
        versions = {s: register_champion(tracker.client, r, primary) for s, r in best.items()} if register else {}
    except Exception:
        tracker.end("FAILED")  # a run left RUNNING would look alive in the UI forever
        raise
    tracker.end()
    if ctx.parent_run_id and tracker.enabled:  # the pipeline's last stage: its grouping run is complete
        tracker.client.set_terminated(ctx.parent_run_id, "FINISHED")
    return tracker.run_id, versions


def leaderboard(
    eval_dir: Path,
    out_dir: Path,
    params: LeaderboardParams,
    raw_dir: Path | None = None,
    ctx: Context = DEFAULT,
    register_best: bool = True,
    include: Collection[tuple[str, int]] | None = None,
    released: Collection[str] = (),
) -> dict[str, Any]:
    """Gather the evaluation JSONs of `eval_dir` into the leaderboard files in `out_dir`.

    `raw_dir` holds the HR benchmark images for the visual figures, whose SR crops come from `eval_dir/images`
    (`srpipe evaluate --save-images`); no model is run here. Where `ctx` tracks, the files are logged to an MLflow
    run (nested under its parent run) and, if `register_best`, the champion of each scale is registered: best PSNR
    on the primary dataset (the first in the evaluations) among models with a training run. `include` limits the
    table to those (model, scale) pairs and `released` catalog entries (the pipeline's), so stale evaluations in
    `eval_dir` never show up; released entries that could not be fetched are listed with their reason.
    Returns rows, models, scales, datasets, files and champions.
    """
    eval_dir, out_dir = Path(eval_dir), Path(out_dir)
    evals = load_evaluations(eval_dir, include, released)
    skipped = skipped_released(eval_dir, include, released)
    rows = build_rows(evals)
    primary = dataset_order(evals)[0]
    with atomic_path(out_dir / "leaderboard.parquet", suffix=".parquet") as tmp:
        pq.write_table(to_arrow(rows), tmp)
    write_text(out_dir / "LEADERBOARD.md", markdown(rows, skipped))
    write_json(out_dir / "leaderboard.json", metrics(rows))
    files = [out_dir / n for n in ("leaderboard.parquet", "LEADERBOARD.md", "leaderboard.json")]
    files += _plots(rows, evals, eval_dir, out_dir, params.visual_crop, raw_dir)
    for stale in {out_dir / "psnr_vs_cost.png", *out_dir.glob("visual_*.png")} - set(files):
        stale.unlink(missing_ok=True)  # a figure of a dataset no longer evaluated would pass for a current one
    best = champions(rows, primary)
    for s, r in best.items():
        if (r["gain_psnr_over_bicubic"] or 0) < 0:  # still the champion by the rule, but nobody should deploy it
            log.warning(
                "leaderboard: x%d champion %s is %.2f dB below bicubic", s, r["model"], -r["gain_psnr_over_bicubic"]
            )
    summary: dict[str, Any] = {
        "rows": len(rows),
        "models": sorted({r["model"] for r in rows}),
        "scales": sorted({r["scale"] for r in rows}),
        "datasets": dataset_order(evals),
        "files": [str(f) for f in files],
        "skipped_released": skipped,
        "champions": {f"x{s}": {"model": r["model"], "psnr": r["psnr"], "dataset": primary} for s, r in best.items()},
    }
    if ctx.tracking_uri:
        summary["mlflow_run_id"], versions = _track(files, best, primary, ctx, register_best)
        for s, version in versions.items():
            summary["champions"][f"x{s}"]["version"] = version
    log.info(
        "leaderboard: %d rows, %d models, scales %s → %s", len(rows), len(summary["models"]), summary["scales"], out_dir
    )
    return summary

"""The Prefect flow end to end under the test harness: same outputs as `dvc repro`, caching, Dask fan-out."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.e2e.conftest import make_project
from tests.flows.conftest import load_flow_module

pytestmark = pytest.mark.slow
MODELS = ["espcn", "fsrcnn"]


def _configure(root: Path, **orchestration: object) -> None:
    p = yaml.safe_load((root / "params.yaml").read_text())
    p["tracking"]["uri"] = f"sqlite:///{root / 'mlflow.db'}"  # the flow may run from any working directory
    p["orchestration"].update(orchestration)
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))


def _mtimes(root: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (root / "data" / "models").glob("*.pt")}


def test_flow_builds_caches_and_reruns_only_what_changed(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(tmp_path, MODELS)
    _configure(root)
    module = load_flow_module("pipeline")
    pipeline = module.pipeline
    result = pipeline(params_path="params.yaml", root=str(root))
    assert sorted(result["trained"]) == ["espcn_x4", "fsrcnn_x4"]
    board = pd.read_parquet(root / "leaderboard" / "leaderboard.parquet")
    assert sorted(board[board["source"] != "released"]["model"].unique()) == ["bicubic", "espcn", "fsrcnn"]
    # released weights (params pipeline.released, where the team copy is reachable): the same rows as under dvc repro
    assert set(board[board["source"] == "released"]["released"]) == set(
        yaml.safe_load((root / "params.yaml").read_text())["pipeline"]["released"]
    )
    for m in ["bicubic", *MODELS]:
        ev = json.loads((root / "data" / "eval" / f"{m}_x4.json").read_text())
        assert ev["psnr"] > 0 and ev["mlflow_run_id"]
    first = _mtimes(root)
    evaluated = (root / "data" / "eval" / "fsrcnn_x4.json").stat().st_mtime_ns

    pipeline(params_path="params.yaml", root=str(root))  # nothing changed: every training is a cache hit
    assert _mtimes(root) == first
    assert (root / "data" / "eval" / "fsrcnn_x4.json").stat().st_mtime_ns == evaluated

    # An edit to code `srpipe evaluate` runs (its manifest's digest, as DVC's stages see it) re-evaluates every model
    # and retrains none: the evaluation stage's code is part of its tasks' cache keys.
    digest = module.codedeps.digest
    monkeypatch.setattr(module.codedeps, "digest", lambda c: digest(c) + ("edited" if c == "evaluate" else ""))

    p = yaml.safe_load((root / "params.yaml").read_text())
    p["train"]["models"]["espcn"] = {"recipe": {"lr": 0.002}}
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    pipeline(params_path="params.yaml", root=str(root))
    after = _mtimes(root)
    assert after["fsrcnn_x4.pt"] == first["fsrcnn_x4.pt"] and after["espcn_x4.pt"] != first["espcn_x4.pt"]
    assert (root / "data" / "eval" / "fsrcnn_x4.json").stat().st_mtime_ns != evaluated

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("srpipe").experiment_id], max_results=200)
    names = [r.info.run_name for r in runs]
    assert names.count("train espcn x4") == 2 and names.count("train fsrcnn x4") == 1


def test_trainings_fan_out_on_a_local_dask_cluster(prefect_harness: None, tmp_path: Path) -> None:
    pytest.importorskip("prefect_dask")
    root = make_project(tmp_path, MODELS, iterations=4)
    _configure(root, task_runner="dask", max_concurrent_trainings=2)
    result = load_flow_module("pipeline").pipeline(params_path="params.yaml", root=str(root))
    workers = {info["worker"] for info in result["trained"].values()}
    assert all(not w.endswith(f":{os.getpid()}") for w in workers), workers  # ran in Dask worker processes
    assert (root / "leaderboard" / "LEADERBOARD.md").exists()

"""The nightly retrain: the pipeline flow served on a cron schedule (02:00 every night by default).

Kept apart from the flow so `flows/pipeline.py` stays importable and testable without a server. Each scheduled run
re-checks the datasets, retrains only the models whose inputs changed (task caching) and republishes the leaderboard.

    prefect server start                     # terminal 1: the API and UI at http://127.0.0.1:4200
    export PREFECT_API_URL=http://127.0.0.1:4200/api
    python flows/nightly.py                  # terminal 2: registers the deployment and runs it on schedule
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline import pipeline  # flows/ is run as a folder of scripts: `python flows/nightly.py`

from srpipe.config import load_params

DEPLOYMENT = "nightly-retrain"


def build_deployment(params_path: str = "params.yaml", root: str = ".") -> Any:
    """The deployment object: cron from params (orchestration.cron), the flow's parameters pinned."""
    cron = load_params(Path(root) / params_path).orchestration.cron
    return pipeline.to_deployment(
        name=DEPLOYMENT,
        cron=cron,
        parameters={"params_path": params_path, "root": str(Path(root).resolve())},
        description="Refresh data, retrain what changed, publish the leaderboard.",
        tags=["srpipe", "nightly"],
    )


if __name__ == "__main__":
    from prefect import serve

    serve(build_deployment())

"""MLflow tracking helpers: failures never stop the work, pipeline runs are found again by their key."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from srpipe.tracking import Tracker, pipeline_run, start_run


class _BrokenClient:
    def log_batch(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("attempt to write a readonly database")


def test_a_tracking_failure_is_logged_once_and_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    tracker = Tracker(_BrokenClient(), "run1")
    with caplog.at_level(logging.WARNING):
        tracker.metrics({"loss": 1.0}, step=1)
        tracker.metrics({"loss": 0.5}, step=2)
        tracker.end()
    assert not tracker.enabled
    assert [r.message for r in caplog.records if "mlflow" in r.message] == [
        "mlflow: logging metrics failed for run run1 (attempt to write a readonly database); "
        "tracking is off for the rest of it"
    ]


def test_pipeline_run_is_found_by_key_and_stage_runs_nest_under_it(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = pipeline_run(uri, "exp", "key-1")
    assert pipeline_run(uri, "exp", "key-1") == first
    assert pipeline_run(uri, "exp", "key-2") != first
    child = start_run(uri, "exp", "train x", tags={"a": 1}, parent=first)
    child.metrics({"loss": 0.25, "nan": float("nan")}, step=3)
    child.end()
    run = MlflowClient(uri).get_run(child.run_id)
    assert run.data.tags["mlflow.parentRunId"] == first and run.data.metrics == {"loss": 0.25}
    assert start_run(None, "exp", "off").enabled is False

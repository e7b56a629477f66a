"""MLflow tracking helpers: failures never stop the work, pipeline runs are found again by their key."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from srpipe.tracking import Tracker, TrackingError, pipeline_run, start_run


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


def test_recipe_globs_are_logged_and_the_run_finishes(tmp_path: Path) -> None:
    # Before: MLflow rejected the key recipe.lr_mult.reconstruct.*, the whole batch failed, and with the papers'
    # recipes (SRCNN, FSRCNN, ESPCN, LapSRN) a training logged nothing and its run stayed RUNNING.
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = start_run(uri, "exp", "train srcnn x2")
    tracker.params({"model": "srcnn", "recipe": {"lr": 1e-4, "lr_mult": {"reconstruct.*": 0.1, "*.bias": 2}}})
    tracker.metrics({"loss": 0.5}, step=1)
    tracker.end()
    run = MlflowClient(uri).get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics == {"loss": 0.5}
    assert run.data.params["recipe.lr"] == "0.0001"
    assert json.loads(run.data.params["recipe.lr_mult"]) == {"*.bias": 2, "reconstruct.*": 0.1}


def test_a_run_whose_logging_failed_is_still_closed(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = start_run(uri, "exp", "x")
    tracker._guard("logging params", _BrokenClient().log_batch)  # a store error while the run goes on
    assert not tracker.enabled
    tracker.end()
    assert MlflowClient(uri).get_run(tracker.run_id).info.status == "FAILED"  # not RUNNING forever


@pytest.mark.parametrize("kind", ["unwritable folder", "not a database"])
def test_an_unusable_store_fails_fast_naming_the_file(tmp_path: Path, kind: str) -> None:
    # Before: ~105 s of MLflow's engine retries, then a traceback that named no file.
    if kind == "unwritable folder":
        db = Path("/proc/srpipe-no-such-dir/mlflow.db")  # not writable even by root
    else:
        db = tmp_path / "mlflow.db"
        db.write_bytes(b"this is not a SQLite file" * 100)
    started = time.monotonic()
    with pytest.raises(TrackingError, match=rf"mlflow store {re.escape(str(db))}: .*tracking\.uri"):
        start_run(f"sqlite:///{db}", "exp", "x")
    assert time.monotonic() - started < 10


_FIRST_USE = """
import sys, time
import mlflow.tracking  # imported before the wait: every process reaches the fresh store at once
from srpipe.tracking import start_run
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
start_run(sys.argv[1], "exp", "x").end()
"""


def test_concurrent_first_use_of_a_fresh_store(tmp_path: Path) -> None:
    # Before: two `--track` runs on a fresh clone raced the schema migration ("duplicate column name: step").
    uri, at = f"sqlite:///{tmp_path / 'mlflow.db'}", time.time() + 12
    procs = [
        subprocess.Popen([sys.executable, "-c", _FIRST_USE, uri, str(at)], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    errors = [p.communicate(timeout=180)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], "\n".join(errors)[-3000:]
    from mlflow.tracking import MlflowClient

    c = MlflowClient(uri)
    assert len(c.search_runs([c.get_experiment_by_name("exp").experiment_id])) == 3


def test_runs_left_running_by_a_killed_process_are_marked_killed(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = "import os, sys\nfrom srpipe.tracking import start_run\nstart_run(sys.argv[1], 'exp', 'killed')\nos._exit(9)"
    subprocess.run([sys.executable, "-c", code, uri], timeout=180)
    alive = start_run(uri, "exp", "alive")  # this process is alive: its run must stay RUNNING
    start_run(uri, "exp", "next").end()
    c = MlflowClient(uri)
    runs = c.search_runs([c.get_experiment_by_name("exp").experiment_id])
    status = {r.data.tags["mlflow.runName"]: r.info.status for r in runs}
    assert status == {"killed": "KILLED", "alive": "RUNNING", "next": "FINISHED"}
    alive.end()

"""MLflow tracking through `MlflowClient` with explicit run ids (safe from threaded Prefect tasks).

mlflow is imported lazily: `import srpipe` stays light, and a run with tracking disabled never pays for it.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TELEMETRY_OFF = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
}
PARENT_ENV = "SRPIPE_PARENT_RUN_ID"  # set by the Prefect flow so stage runs nest under the pipeline run


def telemetry_off() -> None:
    """Switch off the telemetry of MLflow, Prefect and DVC for this process and its children, unless set."""
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out |= _flatten(v, key + ".")
        else:
            out[key] = str(v)[:6000]  # MLflow's param value limit
    return out


class Tracker:
    """One MLflow run; a disabled tracker (no URI, or DDP rank ≠ 0) accepts every call and does nothing.

    A tracking failure (server down, database locked or read-only) must not cost the training it observes: the first
    error is logged, tracking stops for this run, and the work goes on.
    """

    def __init__(self, client: Any = None, run_id: str = "") -> None:
        self.client, self.run_id = client, run_id

    @property
    def enabled(self) -> bool:
        return self.client is not None

    def _guard(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> None:
        if self.client is None:
            return
        try:
            fn(*args, **kwargs)
        except Exception as e:  # MLflow raises many types (MlflowException, sqlalchemy, requests)
            log.warning("mlflow: %s failed for run %s (%s); tracking is off for the rest of it", what, self.run_id, e)
            self.client = None

    def params(self, params: Mapping[str, Any]) -> None:
        if self.enabled:
            from mlflow.entities import Param

            items = [Param(k, v) for k, v in _flatten(params).items()]
            for i in range(0, len(items), 100):  # log_batch takes at most 100 params per call
                self._guard("logging params", self.client.log_batch, self.run_id, params=items[i : i + 100])

    def metrics(self, values: Mapping[str, float], step: int) -> None:
        if self.enabled:
            import time

            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            items = [Metric(k, float(v), now, step) for k, v in values.items() if math.isfinite(float(v))]
            if items:
                self._guard("logging metrics", self.client.log_batch, self.run_id, metrics=items)

    def tags(self, tags: Mapping[str, Any]) -> None:
        if self.enabled:
            for k, v in tags.items():
                self._guard("setting a tag", self.client.set_tag, self.run_id, k, str(v))

    def artifact(self, path: str | Path, folder: str | None = None) -> None:
        if self.enabled:
            path = Path(path)
            log_fn = self.client.log_artifacts if path.is_dir() else self.client.log_artifact
            self._guard("logging artifacts", log_fn, self.run_id, str(path), folder)

    def end(self, status: str = "FINISHED") -> None:
        if self.enabled:
            self._guard("ending the run", self.client.set_terminated, self.run_id, status)


def client(uri: str) -> Any:
    telemetry_off()
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def experiment_id(c: Any, name: str) -> str:
    exp = c.get_experiment_by_name(name)
    return exp.experiment_id if exp is not None else c.create_experiment(name)


def pipeline_run(uri: str, experiment: str, key: str, tags: Mapping[str, Any] | None = None) -> str:
    """The run that groups one pipeline execution (same params and code = same `key`): found, or created.

    Both front doors nest their stage runs under it: the Prefect flow creates it up front, and each `dvc repro`
    stage process finds it by its key tag, so a DVC pipeline is one tree in the MLflow UI as well.
    """
    c = client(uri)
    exp = experiment_id(c, experiment)
    found = c.search_runs([exp], filter_string=f"tags.`srpipe.pipeline_key` = '{key}'", max_results=1)
    if found:
        return found[0].info.run_id
    all_tags = {"mlflow.runName": f"pipeline {key[:8]}", "srpipe.pipeline_key": key, **(tags or {})}
    return c.create_run(exp, tags={k: str(v) for k, v in all_tags.items()}).info.run_id


def start_run(
    uri: str | None, experiment: str, name: str, tags: Mapping[str, Any] | None = None, parent: str | None = None
) -> Tracker:
    """A new run in `experiment`, nested under `parent` (or $SRPIPE_PARENT_RUN_ID); `uri` None = tracking off."""
    if not uri:
        return Tracker()
    c = client(uri)
    all_tags = {"mlflow.runName": name, **(tags or {})}
    parent = parent or os.environ.get(PARENT_ENV)
    if parent:
        all_tags["mlflow.parentRunId"] = parent
    run = c.create_run(experiment_id(c, experiment), tags={k: str(v) for k, v in all_tags.items()}, run_name=name)
    log.info("mlflow: run %s (%s) in experiment %r at %s", run.info.run_id, name, experiment, uri)
    return Tracker(c, run.info.run_id)

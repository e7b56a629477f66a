"""MLflow tracking through `MlflowClient` with explicit run ids (safe from threaded Prefect tasks).

mlflow is imported lazily: `import srpipe` stays light, and a run with tracking disabled never pays for it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import socket
from collections.abc import Iterator, Mapping
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


_KEY = re.compile(r"^[\w\-. /]+$")  # MLflow's allowed param-key characters


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        # A mapping whose keys MLflow would reject (lr_mult globs like "reconstruct.*") is logged as one JSON value:
        # one bad key fails the whole batch, and the run would log nothing.
        if isinstance(v, Mapping) and all(_KEY.match(f"{key}.{sub}") for sub in v):
            out |= _flatten(v, key + ".")
        elif isinstance(v, Mapping):
            out[key] = json.dumps(v, sort_keys=True, default=str)[:6000]
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
        self._closer = client  # kept after a logging failure: a run must not stay RUNNING because a param was bad

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
        elif self._closer is not None:  # logging failed earlier: still close the run, as FAILED if it was to finish
            with contextlib.suppress(Exception):
                self._closer.set_terminated(self.run_id, "FAILED" if status == "FINISHED" else status)
        self._closer = None


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message names it and says how to fix or switch off tracking."""


_FIX = 'set tracking.uri (or SRPIPE_TRACKING_URI) to a writable place, or tracking.uri: "" to switch tracking off'
_READY: set[Path] = set()  # SQLite stores this process has opened (created or migrated) already


def _sqlite_file(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI (relative after three slashes, absolute after four), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?")[0]
    return None if path in ("", ":memory:") else Path(path)


@contextlib.contextmanager
def _store_lock(db: Path) -> Iterator[None]:
    """An exclusive lock on `<db>.lock`: the first use of a fresh store creates and migrates its schema, and two
    processes doing that at once fail ("duplicate column name: step"); with the lock the second finds it done."""
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        f = open(db.with_name(db.name + ".lock"), "a")  # noqa: SIM115 - held for the whole block
    except OSError as e:
        raise TrackingError(f"mlflow store {db}: cannot write in {db.parent} ({e.strerror or e}); {_FIX}") from None
    with f:
        try:
            import fcntl
        except ImportError:  # Windows: no flock; concurrent first runs are then the user's concern
            yield
            return
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _open_sqlite(uri: str, db: Path) -> Any:
    """A client for the SQLite store `db`, checked writable first, then created or migrated under the store lock.

    Checked with sqlite3 first because MLflow retries a failing engine for ~100 s before raising its traceback.
    """
    import sqlite3

    from mlflow.tracking import MlflowClient

    with _store_lock(db):
        try:
            con = sqlite3.connect(db, timeout=60)
            try:
                con.execute("BEGIN IMMEDIATE")  # takes the write lock: fails on a read-only file or folder
                con.rollback()
                con.execute("SELECT count(*) FROM sqlite_master").fetchone()  # fails on a file that is not SQLite
            finally:
                con.close()
        except sqlite3.Error as e:
            raise TrackingError(f"mlflow store {db}: not a writable SQLite database ({e}); {_FIX}") from None
        try:
            c = MlflowClient(tracking_uri=uri)  # the store is built here: schema created or migrated
            c.search_experiments(max_results=1)
        except Exception as e:
            raise TrackingError(f"mlflow store {db}: cannot be opened ({e}); {_FIX}") from e
    _READY.add(db)
    return c


def client(uri: str) -> Any:
    """An MlflowClient for `uri`; a SQLite store is checked and set up first (TrackingError naming it if unusable)."""
    telemetry_off()
    from mlflow.tracking import MlflowClient

    db = _sqlite_file(uri)
    if db is not None and db not in _READY:
        return _open_sqlite(uri, db)
    return MlflowClient(tracking_uri=uri)


def experiment_id(c: Any, name: str) -> str:
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return c.create_experiment(name)
    except Exception:  # another process created it between the two calls
        exp = c.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _process_started(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), or None if it is gone (or a zombie)."""
    try:
        import psutil
    except ImportError:  # without psutil: alive or not, no start time to tell a reused pid apart
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except OSError:
            pass
        return 0.0
    try:
        p = psutil.Process(pid)
        return None if p.status() == psutil.STATUS_ZOMBIE else p.create_time()
    except psutil.Error:
        return None


def _owner_tags() -> dict[str, str]:
    return {
        "srpipe.host": socket.gethostname(),
        "srpipe.pid": str(os.getpid()),
        "srpipe.pid_started": str(_process_started(os.getpid()) or 0.0),
    }


def close_dead_runs(c: Any, experiment: str) -> list[str]:
    """Mark KILLED the runs of `experiment` left RUNNING by an srpipe process of this host that no longer exists
    (killed, or the machine rebooted), as `mlflow gc`-style tools would; runs of live processes are left alone."""
    host = socket.gethostname()
    query = f"attributes.status = 'RUNNING' and tags.`srpipe.host` = '{host}'"
    closed = []
    for run in c.search_runs([experiment], filter_string=query, max_results=1000):
        tags = run.data.tags
        with contextlib.suppress(KeyError, ValueError):
            pid, started = int(tags["srpipe.pid"]), float(tags["srpipe.pid_started"])
            now = _process_started(pid)
            if now is None or (started and now and abs(now - started) > 1.0):  # gone, or the pid was reused
                c.set_terminated(run.info.run_id, "KILLED")
                closed.append(run.info.run_id)
                log.warning(
                    "mlflow: run %s (%s) was left RUNNING by process %d, which is gone: marked KILLED",
                    run.info.run_id,
                    tags.get("mlflow.runName", ""),
                    pid,
                )
    return closed


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
    all_tags = {"mlflow.runName": name, **(tags or {}), **_owner_tags()}
    parent = parent or os.environ.get(PARENT_ENV)
    if parent:
        all_tags["mlflow.parentRunId"] = parent
    exp = experiment_id(c, experiment)
    try:
        close_dead_runs(c, exp)
    except Exception as e:  # housekeeping: never a reason to lose the run that starts now
        log.warning("mlflow: could not check for runs left RUNNING by killed processes (%s)", e)
    run = c.create_run(exp, tags={k: str(v) for k, v in all_tags.items()}, run_name=name)
    log.info("mlflow: run %s (%s) in experiment %r at %s", run.info.run_id, name, experiment, uri)
    return Tracker(c, run.info.run_id)

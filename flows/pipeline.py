"""The whole pipeline as one Prefect flow: download → prepare → train (mapped) → evaluate → leaderboard.

Thin wiring only: every task body is one call into `srpipe.stages`, the same functions the CLI and `dvc repro` run.
Caching keys are the tasks' inputs plus the code their stage runs (the digest of the same manifest DVC's stages depend
on, srpipe.codedeps), and the inputs carry content digests (data version, run-spec fingerprint, weights hash) rather
than bare paths, so a re-run skips exactly the work whose inputs or code did not change.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

# Before prefect is imported: its database and results stay inside the project, and no telemetry leaves the machine.
os.environ.setdefault("PREFECT_HOME", str(Path.cwd() / ".prefect"))
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "srpipe")  # the stages' own log lines show in each task

from srpipe.tracking import telemetry_off

telemetry_off()

from prefect import flow, task, unmapped  # noqa: E402
from prefect.cache_policies import INPUTS, TASK_SOURCE, CachePolicy  # noqa: E402
from prefect.futures import wait  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from srpipe import codedeps  # noqa: E402
from srpipe.config import Params, PrepareParams, load_params  # noqa: E402
from srpipe.context import Context  # noqa: E402
from srpipe.plan import EvalJob, Layout, TrainJob, plan, run_key  # noqa: E402
from srpipe.provenance import data_version, file_digest, git_commit  # noqa: E402
from srpipe.stages import download, evaluate, leaderboard, prepare, train  # noqa: E402
from srpipe.tracking import pipeline_run  # noqa: E402
from srpipe.train.spec import train_key  # noqa: E402


def cached(command: str, *exclude: str) -> dict[str, Any]:
    """Cache on the task's source, the code of its stage's command, and its inputs minus arguments that are only
    wiring (whole params, run ids)."""
    policy = INPUTS
    for name in exclude:
        policy = policy - name
    # The code `srpipe <command>` runs: an edit to any file of it reruns the task, as it reruns the DVC stage
    # (TASK_SOURCE sees only the task's own lines). A partial of a library function: Dask workers can unpickle it.
    code = CachePolicy.from_cache_key_fn(functools.partial(codedeps.cache_key, command))
    return {"cache_policy": policy + TASK_SOURCE + code, "persist_result": True}


@task(retries=3, retry_delay_seconds=[5, 30, 120], task_run_name="download {name}")
def download_task(name: str, raw: Path, p: Params) -> dict:
    return download.download(
        [name],
        raw,
        optional=p.data.optional,
        mirrors=p.data.mirrors,
        local=p.data.local,
        timeout=p.data.timeout,
        retries=p.data.retries,
        progress=False,
    )


@task(task_run_name="prepare", **cached("prepare"))
def prepare_task(raw: Path, out: Path, params: PrepareParams, scales: tuple[int, ...], raw_digest: str) -> dict:
    return prepare.prepare(raw, out, params, scales, progress=False)


@task(task_run_name="train {model} x{scale}", **cached("train", "p", "parent"))
def train_task(
    model: str, scale: int, store: Path, out: Path, p: Params, init: Path | None, key: str, parent: str
) -> dict:
    return train.train(
        model,
        scale,
        store,
        out,
        p.train,
        Context.of(p, parent_run_id=parent, device=p.train.device, progress=False),
        init_weights=init,
    )


@task(task_run_name="evaluate {model} x{scale}", **cached("evaluate", "p", "parent"))
def evaluate_task(
    model: str, scale: int, weights: Path | None, weights_sha: str, root: Path, raw_digest: str, p: Params, parent: str
) -> dict:
    at = Layout(root)
    datasets, _ = evaluate.resolve_datasets(at.raw, list(p.evaluate.datasets))
    return evaluate.evaluate(
        model,
        scale,
        datasets,
        p.evaluate,
        weights=weights,
        out_json=at.eval_json(model, scale),
        save_images=at.eval_images(model, scale),
        ctx=Context.of(p, parent_run_id=parent, progress=False),
    )


@task(task_run_name="evaluate released {name}", **cached("evaluate", "p", "parent"))
def evaluate_released_task(name: str, root: Path, raw_digest: str, p: Params, parent: str) -> dict:
    at = Layout(root)
    datasets, _ = evaluate.resolve_datasets(at.raw, list(p.evaluate.datasets))
    return evaluate.evaluate_released(
        name,
        datasets,
        p.evaluate,
        at.released,
        p.data.mirrors,
        out_json=at.released_json(name),
        ctx=Context.of(p, parent_run_id=parent, progress=False),
    )


@task(task_run_name="leaderboard")
def leaderboard_task(root: Path, p: Params, parent: str) -> dict:
    at = Layout(root)
    return leaderboard.leaderboard(
        at.evals,
        at.leaderboard,
        p.leaderboard,
        raw_dir=at.raw,
        ctx=Context.of(p, parent_run_id=parent, progress=False),
        register_best=p.tracking.register_best,
        include=p.pipeline.evaluated(),
        released=p.pipeline.released,
    )


def training_runner(p: Params) -> Any:
    """Threads by default; a Dask cluster (prefect-dask, the `dask` extra) to fan trainings out over machines."""
    n = p.orchestration.max_concurrent_trainings
    if p.orchestration.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if p.orchestration.dask_address:
            return DaskTaskRunner(address=p.orchestration.dask_address)
        # A local cluster splits this machine's cores between the concurrent trainings: more OpenMP threads than
        # cores would spin against each other (measured 10× slower steps on 2 cores).
        threads = str(max(1, (os.cpu_count() or 1) // n))
        local = {"n_workers": n, "threads_per_worker": 1, "processes": True, "host": "127.0.0.1"}
        return DaskTaskRunner(cluster_kwargs={**local, "dashboard_address": None, "env": {"OMP_NUM_THREADS": threads}})
    return ThreadPoolTaskRunner(max_workers=n)


@flow(name="srpipe-train", log_prints=True)
def train_all(waves: list[list[TrainJob]], root: Path, p: Params, parent: str) -> dict[str, Any]:
    """Trainings as a subflow, so its task runner (and concurrency limit) is the one params choose; wave by wave
    (srpipe.plan.Plan.waves), a training's cache key including the digest of the weights it starts from."""
    at = Layout(root)
    version = data_version(at.store / "train")
    results: dict[str, Any] = {}
    for wave in waves:
        futures = {}
        for job in wave:
            out, init = at.weights(job.model, job.scale), at.weights(*job.init) if job.init else None
            key = train_key(job.model, job.scale, p.train, version, file_digest(init) if init else "")
            futures[out.stem] = train_task.with_options(refresh_cache=not out.exists()).submit(
                job.model, job.scale, at.store, out, p, init, key, parent
            )
        wait(list(futures.values()))
        results |= {k: f.result() for k, f in futures.items()}
    return results


@flow(name="srpipe-evaluate", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=1))
def evaluate_all(jobs: list[EvalJob], released: list[str], root: Path, raw_digest: str, p: Params, parent: str) -> None:
    """One evaluation at a time: each measures its latency and peak memory on an otherwise idle device. The authors'
    weights (`released`) are skipped with the reason when no copy is reachable."""
    at = Layout(root)
    futures = []
    for job in jobs:
        w = at.weights(job.model, job.scale) if job.learned else None
        fresh = not at.eval_json(job.model, job.scale).exists()
        futures.append(
            evaluate_task.with_options(refresh_cache=fresh).submit(
                job.model, job.scale, w, file_digest(w) if w else "", root, raw_digest, p, parent
            )
        )
    for name in released:
        fresh = not at.released_json(name).exists()
        futures.append(
            evaluate_released_task.with_options(refresh_cache=fresh).submit(name, root, raw_digest, p, parent)
        )
    wait(futures)
    for f in futures:
        f.result()  # a failed evaluation fails the flow here, not later in the leaderboard


@flow(name="srpipe", log_prints=True)
def pipeline(params_path: str = "params.yaml", root: str = ".") -> dict[str, Any]:
    """Run every stage for the models × scales in `params_path`: the plan (srpipe.plan), then its stages mapped."""
    p = load_params(Path(root) / params_path)
    jobs = plan(p.pipeline)  # an unknown model or unsupported scale fails here, before any download or training
    at = Layout(Path(root))
    parent = pipeline_run(p.tracking_uri(), p.tracking.experiment, run_key(p, root), {"git_commit": git_commit(root)})
    wait(download_task.map(list(p.data.datasets), unmapped(at.raw), unmapped(p)))
    raw_digest = "".join(sorted(str(file_digest(m)) for m in at.raw.glob("*/MANIFEST.json")))
    prepare_task.with_options(refresh_cache=not at.store.exists())(
        at.raw, at.store, p.prepare, p.pipeline.scales, raw_digest
    )
    trained = train_all.with_options(task_runner=training_runner(p))(jobs.waves(), at.root, p, parent)
    evaluate_all(list(jobs.evaluations), list(jobs.released), at.root, raw_digest, p, parent)
    board = leaderboard_task(at.root, p, parent)
    return {"trained": trained, "evaluated": len(jobs.evaluations), "leaderboard": board}


if __name__ == "__main__":
    pipeline()

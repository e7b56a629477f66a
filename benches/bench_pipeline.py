"""Pipeline overhead of the main job: the share of `dvc repro`'s wall time that is not a training or evaluation step
(process start-up and imports, DVC's bookkeeping, tracking, model building, downloads). Target ≤ 10 %.

Usage: python benches/bench_pipeline.py [--forkserver off,on] [--log FILE --root DIR]

Without --log it copies this checkout (tracked files and params) to a temporary folder and runs `dvc repro` there,
every output line stamped with the time (a full main job: ~15 min on a 2-core CPU), once per `--forkserver` mode
(SRPIPE_FORKSERVER=0/1: each stage its own process, or a child of srpipe.forkserver), one after the other on the same
machine, so the two overheads compare side by side. With --log it reads such a
stamped log (`dvc repro 2>&1 | <stamp each line with time.time()>`) and the run's outputs under --root. Each
stage's wall time runs from its "Running stage" line to the next stage's; its work is what the stage itself
measured: the training loop's `train_seconds` (weights card) and evaluate's `seconds` (evaluation JSON). Start-up is
measured here too: one process importing the CLI and each stage module, as every DVC stage does.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from _report import ROOT, environment, save, table

STAGE = re.compile(r"^(\d+\.\d+) Running stage '([^']+)'")
END = re.compile(r"^(\d+\.\d+) ")
CMD = re.compile(r"^\d+\.\d+ > (srpipe .*)$")


def run_main_job(workdir: Path, forkserver: str) -> Path:
    """A fresh copy of the checkout, `dvc repro` in it, each line stamped; returns the log."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        (workdir / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, workdir / f)
    shutil.copytree(ROOT.parent / "shared", workdir.parent / "shared", dirs_exist_ok=True, symlinks=True)
    subprocess.run(["git", "init", "-q"], cwd=workdir, check=True)
    log = workdir / "dvc-repro.log"
    with log.open("w") as out:
        env = os.environ | {"SRPIPE_FORKSERVER": "1" if forkserver == "on" else "0"}
        # The copy's own srpipe, not the editable install's checkout (which may be edited while this runs)
        env |= {"PYTHONPATH": os.pathsep.join(p for p in (str(workdir), os.environ.get("PYTHONPATH")) if p)}
        env |= {"SRPIPE_FORKSERVER_DIR": str(workdir.parent / "forkserver")}  # a server of its own, started cold
        proc = subprocess.Popen(
            ["dvc", "repro"], cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        for line in proc.stdout:
            out.write(f"{time.time():.2f} {line}")
        out.write(f"{time.time():.2f} END\n")
        # Kept beside the results (the copy itself is removed on the way out): the per-stage timeline to analyse
        kept = Path(tempfile.gettempdir()) / f"bench_pipeline-forkserver-{forkserver}.log"
        if proc.wait():
            shutil.copy(log, kept)
            raise SystemExit(f"dvc repro failed: see {kept}")
        shutil.copy(log, kept)
    return log


def stage_walls(log: Path) -> dict[str, tuple[float, list[str]]]:
    """Per stage: seconds from its start line to the next stage's (the last: to the log's last line), and its
    command (the "> srpipe ..." line DVC prints; a folded command continues on the following lines)."""
    starts: list[tuple[str, float, list[str]]] = []
    last = 0.0
    for line in log.read_text().splitlines():
        if m := STAGE.match(line):
            starts.append((m.group(2), float(m.group(1)), []))
        elif starts and (m := CMD.match(line)):
            starts[-1][2].extend(shlex.split(m.group(1)))
        if m := END.match(line):
            last = float(m.group(1))
    ends = [t for _, t, _ in starts[1:]] + [last]
    return {name: (end - t, argv) for (name, t, argv), end in zip(starts, ends)}


def stage_work(argv: list[str], root: Path) -> float:
    """Seconds of training or evaluation the stage measured itself (weights card, evaluation JSON); 0 otherwise."""

    def option(flag: str) -> Path | None:
        return root / argv[argv.index(flag) + 1] if flag in argv else None

    if argv[1:2] == ["train"] and (out := option("--out")):
        from srpipe.weights import read_card

        return float(read_card(out)[0].train.get("train_seconds") or 0.0)
    if argv[1:2] == ["evaluate"] and (out := option("--json")) and out.exists():
        return float(json.loads(out.read_text()).get("seconds") or 0.0)
    return 0.0


def startup(root: Path) -> dict[str, float]:
    """Wall seconds of a fresh process importing the CLI and a stage module (median of 3)."""
    out = {}
    env = os.environ | {"PYTHONPATH": str(root)}
    for module in ("srpipe.cli", "srpipe.stages.train", "srpipe.stages.evaluate", "srpipe.tracking", "mlflow"):
        times = []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", f"import srpipe.cli, {module}"], env=env, check=True)
            times.append(time.perf_counter() - t)
        out[module] = sorted(times)[1]
    return out


def same_scores(root: Path) -> str:
    """How many of the run's leaderboard rows have exactly the committed main job's PSNR and SSIM ("n of m")."""
    import pandas as pd

    new, ref = root / "leaderboard" / "leaderboard.parquet", ROOT / "leaderboard" / "leaderboard.parquet"
    if not (new.is_file() and ref.is_file()) or new == ref:
        return "not compared"
    key = ["model", "scale", "dataset", "self_ensemble", "protocol"]
    both = pd.read_parquet(new).merge(pd.read_parquet(ref), on=key, how="outer", suffixes=("", "_ref"))
    equal = (both["psnr"] == both["psnr_ref"]) & (both["ssim"] == both["ssim_ref"])
    return f"{int(equal.sum())} of {len(both)}"


def summarise(log: Path, root: Path) -> dict:
    walls = stage_walls(log)
    groups: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for name, (wall, argv) in walls.items():
        g = groups[name.partition("@")[0]]
        g[0] += 1
        g[1] += wall
        g[2] += stage_work(argv, root)
    total = sum(wall for wall, _ in walls.values())
    work = sum(g[2] for g in groups.values())
    rows = [[k, n, w, s, w - s, f"{(w - s) / total:.1%}"] for k, (n, w, s) in groups.items()]
    rows.append(["all", len(walls), total, work, total - work, f"{(total - work) / total:.1%}"])
    print(table(["stage", "runs", "wall s", "work s", "overhead s", "of total"], rows))
    same = same_scores(root)
    print(f"PSNR/SSIM equal to the committed leaderboard's: {same}")
    record = {"wall_s": total, "work_s": work, "overhead": (total - work) / total, "stages": len(walls)}
    record["same_scores"] = same
    return record | {"groups": {k: dict(zip(("runs", "wall_s", "work_s"), v, strict=True)) for k, v in groups.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", type=Path, help="a stamped `dvc repro` log (default: run the main job now)")
    ap.add_argument("--root", type=Path, default=ROOT, help="the run's checkout (data/models, data/eval)")
    ap.add_argument("--forkserver", default="off,on", help="modes to run, in order: off, on or both (off,on)")
    args = ap.parse_args()
    env = environment()
    records = []
    for mode in args.forkserver.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            log, root = args.log, args.root
            if log is None:
                root = Path(tmp) / "srpipe"
                log = run_main_job(root, mode)
            print(f"\nforkserver {mode}: {log}")
            records.append(summarise(log, root) | {"forkserver": mode})
        if args.log is not None:
            break
    if len(records) == 2:
        a, b = records
        print(
            f"\noverhead {a['forkserver']} {a['wall_s'] - a['work_s']:.0f} s ({a['overhead']:.1%}) vs "
            f"{b['forkserver']} {b['wall_s'] - b['work_s']:.0f} s ({b['overhead']:.1%}): "
            f"{(a['wall_s'] - a['work_s']) / max(b['wall_s'] - b['work_s'], 1e-9):.2f}x"
        )
    starts = startup(ROOT)
    print(table(["import (fresh process, with srpipe.cli)", "seconds"], [[k, v] for k, v in starts.items()]))
    print(f"results appended to {save('bench_pipeline', [r | {'startup_s': starts} for r in records], env)}")


if __name__ == "__main__":
    main()

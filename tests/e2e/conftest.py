"""A throw-away copy of the project (real git, real DVC) with a tiny profile, for the end-to-end tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
BIN = Path(sys.executable).parent  # srpipe, dvc and mlflow of the environment running the tests


def tiny_params(models: list[str], iterations: int = 10) -> dict:
    """The default params.yaml shrunk to a couple of fast models, mirrors pointing at the shared copies."""
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    have_set5 = (SHARED / "benchmarks" / "Set5").is_dir()
    p["pipeline"]["models"] = models
    p["pipeline"]["finetune"] = []
    p["data"]["datasets"] = {"sample": "required", **({"Set5": "optional"} if have_set5 else {})}
    p["data"]["mirrors"] = [str(SHARED / "benchmarks"), str(SHARED / "weights")] if have_set5 else []
    # One released model (a small SRCNN file): scored where the team copy is, skipped with the reason where not
    have_weights = (SHARED / "weights" / "SRCNN" / "srcnn_955_imagenet_x4.mat").is_file()
    p["pipeline"]["released"] = ["srcnn_955_imagenet_x4"] if have_weights else []
    p["prepare"].update({"train": ["sample/train"], "lr_patch": 16, "stride": 16, "max_valid_side": 96})
    p["train"].update({"iterations": iterations, "val_every": iterations, "ckpt_every": iterations, "workers": 0})
    p["train"]["recipe"].update({"batch_size": 4, "patch_size": 32})
    p["train"]["models"] = {m: {} for m in models}
    p["evaluate"]["datasets"] = ["Set5"] if have_set5 else ["sample/test"]
    p["evaluate"]["latency_repeats"] = 1
    return p


def env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DVC_NO_ANALYTICS": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }


def run(cmd: list[str], cwd: Path, timeout: float = 900) -> str:
    """`cmd` in the project `cwd`, running that project's own srpipe (as in a user's checkout), not this one's."""
    here = env() | {"PYTHONPATH": os.pathsep.join(p for p in (str(cwd), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run(cmd, cwd=cwd, env=here, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{out[-6000:]}"
    return out


def make_project(dest: Path, models: list[str], iterations: int = 10) -> Path:
    """Copy the tracked files (no data, no caches), write the tiny params, and commit: a fresh clone's state."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file() and not name.startswith(("leaderboard/", "dvc.lock")):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    (dest / "params.yaml").write_text(yaml.safe_dump(tiny_params(models, iterations), sort_keys=False))
    run(["git", "init", "-q"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-qm", "tiny profile"], dest)
    return dest

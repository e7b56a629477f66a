"""Where a result came from: the git commit of the code and a version hash of the prepared data."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path


def git_commit(cwd: str | Path = ".") -> str:
    """HEAD's commit, with "-dirty" when tracked files differ from it; "" outside a git checkout."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return head + ("-dirty" if dirty else "")


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def data_version(store_dir: str | Path) -> str:
    """A short hash of a prepared store's index files: changes whenever `prepare` produced different data."""
    h = hashlib.sha256()
    for name in ("meta.json", "images.parquet", "patches.parquet"):
        p = Path(store_dir) / name
        if p.exists():
            h.update(file_digest(p).encode())
    return h.hexdigest()[:12]

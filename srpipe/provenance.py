"""Where a result came from: the git commit of the code and a version hash of the prepared data."""

from __future__ import annotations

import functools
import hashlib
import re
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


def dvc_md5(path: str | Path) -> str:
    """The md5 DVC recorded for output `path` in the nearest dvc.lock above it ("" when DVC does not track it).

    Stage runs are tagged with it, so an MLflow run points at the exact DVC-versioned data (`dvc checkout` brings
    that version back).
    """
    target = Path(path).resolve()
    for folder in target.parents:
        lock = folder / "dvc.lock"
        if lock.is_file():
            try:
                outs = _lock_outs(lock, lock.stat().st_mtime_ns)
            except OSError:
                return ""
            return outs.get(target.relative_to(folder).as_posix(), "")
    return ""


# A stage's `outs:` list in dvc.lock: DVC writes it "indentless" (the items at the key's own indent).
_LOCK_OUTS = re.compile(r"^( *)outs:\n((?:\1(?:- |  ).*(?:\n|$))+)", re.MULTILINE)


@functools.cache
def _lock_outs(lock: Path, mtime_ns: int) -> dict[str, str]:
    """Output path → md5 of one dvc.lock, read once per version of the file. Only the `outs:` lists are parsed:
    the whole lock of the main job (~170 KB, mostly code deps) took 0.17 s per stage process with PyYAML's C
    parser, a cost paid by each of its 42 stages."""
    import yaml

    found: dict[str, str] = {}
    for m in _LOCK_OUTS.finditer(lock.read_text()):
        try:
            outs = yaml.load(m.group(2), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError:
            continue
        for out in outs if isinstance(outs, list) else []:
            if isinstance(out, dict) and "path" in out:
                found[str(out["path"])] = str(out.get("md5", ""))
    return found

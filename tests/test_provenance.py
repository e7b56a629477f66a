"""Provenance: git commit, data version, and the md5 DVC recorded for an output."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from srpipe.provenance import data_version, dvc_md5, file_digest, git_commit


def test_dvc_md5_reads_the_nearest_lock(tmp_path: Path) -> None:
    lock = {"schema": "2.0", "stages": {"prepare": {"outs": [{"path": "data/prepared", "md5": "abc.dir"}]}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    (tmp_path / "data" / "prepared" / "train").mkdir(parents=True)
    assert dvc_md5(tmp_path / "data" / "prepared") == "abc.dir"
    assert dvc_md5(tmp_path / "data" / "prepared" / "train") == ""  # not an output itself
    assert dvc_md5(tmp_path / "elsewhere") == ""


def test_git_commit_and_digests(tmp_path: Path) -> None:
    assert git_commit(tmp_path) == ""  # not a checkout
    run = {"cwd": tmp_path, "check": True, "capture_output": True}
    subprocess.run(["git", "init", "-q"], **run)
    (tmp_path / "f.txt").write_text("x")
    subprocess.run(["git", "add", "f.txt"], **run)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "m"], **run)
    head = git_commit(tmp_path)
    assert len(head) == 40
    (tmp_path / "f.txt").write_text("y")
    assert git_commit(tmp_path) == head + "-dirty"
    assert file_digest(tmp_path / "f.txt") == "a1fce4363854ff888cff4b8e7875d600c2682390412a8cf79b37d0b11148b0fa"
    store = tmp_path / "store"
    store.mkdir()
    (store / "meta.json").write_text("{}")
    first = data_version(store)
    (store / "meta.json").write_text('{"images": 1}')
    assert data_version(store) != first and len(first) == 12


def test_dvc_md5_agrees_with_a_full_parse_of_a_lock_dvc_wrote() -> None:
    """dvc_md5 reads only the `outs:` lists; on the committed dvc.lock (written by DVC) it must find every output
    a full YAML parse finds, with the same md5."""
    from srpipe.provenance import _lock_outs

    lock = Path(__file__).resolve().parents[1] / "dvc.lock"
    stages = yaml.safe_load(lock.read_text())["stages"]
    full = {out["path"]: str(out.get("md5", "")) for st in stages.values() for out in st.get("outs", [])}
    assert len(full) > 40 and _lock_outs(lock, lock.stat().st_mtime_ns) == full

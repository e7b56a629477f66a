"""Atomic writes: a failed write leaves the previous output, concurrent writers never tear or lose a tree."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from srpipe.fsio import atomic_dir, atomic_path, write_json


def test_a_failed_file_write_keeps_the_previous_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text('{"v": 2, "trunc')
        raise RuntimeError("crash mid-write")
    assert target.read_text() == '{\n  "v": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_published_files_get_the_umask_mode_not_mkstemps_private_one(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {})
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "x").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_a_failed_dir_write_keeps_the_previous_tree(tmp_path: Path) -> None:
    dest = tmp_path / "raw"
    with atomic_dir(dest) as tmp:
        (tmp / "a.png").write_bytes(b"old")
    with pytest.raises(ValueError), atomic_dir(dest) as tmp:
        (tmp / "a.png").write_bytes(b"half")
        raise ValueError("corrupt archive")
    assert [p.name for p in dest.iterdir()] == ["a.png"] and (dest / "a.png").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["raw"]


def test_concurrent_dir_writers_to_one_path_each_publish_a_whole_tree(tmp_path: Path) -> None:
    dest, errors = tmp_path / "prepared", []

    def write(writer: int) -> None:
        try:
            for i in range(25):
                with atomic_dir(dest) as tmp:
                    for name in ("hr.bin", "lr.bin", "meta.json"):
                        (tmp / name).write_text(f"{writer}-{i}")
        except Exception as e:  # a thread's exception would otherwise vanish
            errors.append(e)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    contents = {p.name: p.read_text() for p in dest.iterdir()}
    assert sorted(contents) == ["hr.bin", "lr.bin", "meta.json"] and len(set(contents.values())) == 1  # one writer's
    assert [p.name for p in tmp_path.iterdir()] == ["prepared"]  # every temp and moved-aside tree is gone

"""Atomic writes: a failed write leaves the previous output, concurrent writers never tear or lose a tree."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from srpipe.fsio import _host, _owner, atomic_dir, atomic_path, sweep, write_json


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


def test_a_tree_hidden_by_a_writer_killed_between_the_renames_is_restored(tmp_path: Path) -> None:
    # Before: a kill between _swap_in's two renames left data/prepared missing, its store hidden as .prepared.old.*.
    dest = tmp_path / "prepared"
    with atomic_dir(dest) as tmp:
        (tmp / "meta.json").write_text("old store")
    hidden = tmp_path / ".prepared.old.0123456789ab"  # the name today's srpipe gives it
    os.replace(dest, hidden)
    (tmp_path / ".prepared.k3j5h2l1.tmp").mkdir()  # the new tree that never made it
    sweep(dest)
    assert (dest / "meta.json").read_text() == "old store"
    assert [p.name for p in tmp_path.iterdir()] == ["prepared"]


def test_leftovers_of_killed_writers_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    dest = tmp_path / "Set5"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = f"{_host()}-{int(dead.stdout)}"  # a pid that has exited
    leftovers = [f".Set5.{gone}.a1b2c3d4.tmp", ".Set5.a1b2c3d4.tmp", f".Set5.old.{gone}.0123456789ab"]
    live = [f".Set5.{_owner()}.zzzzzzzz.tmp", f".Set5.ffffff-{os.getpid()}.yyyyyyyy.tmp"]  # ours; another host's
    unrelated = [".Set5.json.a1b2c3d4.tmp", "Set5x", ".Set14.a1b2c3d4.tmp"]
    for name in leftovers + live + unrelated:
        (tmp_path / name).mkdir()
        (tmp_path / name / "f").write_text("x")
    with atomic_dir(dest) as tmp:  # every publication sweeps first
        (tmp / "a.png").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["Set5", *live, *unrelated])

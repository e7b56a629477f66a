"""Atomic file and directory writes: a reader never sees a torn file, a crash never leaves a half-written output."""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@functools.cache
def _umask() -> int:
    # Read once: os.umask can only be read by setting it, and doing that per write would race between threads.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publishable(path: Path, mode: int) -> None:
    """mkstemp/mkdtemp create private (0600/0700) entries; published outputs get the usual umask-based mode."""
    os.chmod(path, mode & ~_umask())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temp path beside `path`; on success it is fsynced and renamed over `path`, on error removed.

    `os.replace` is atomic on POSIX within one filesystem, so two concurrent writers each publish a whole file and the
    last one wins; neither ever exposes a partial one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        _publishable(tmp_path, 0o666)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temp dir beside `path`; on success it replaces `path` (old content removed) by renames."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{_owner()}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        _publishable(tmp, 0o777)
        _swap_in(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(new: Path, path: Path, attempts: int = 100) -> None:
    """Rename directory `new` to `path`, first moving aside (then deleting) what holds `path`.

    A directory cannot be renamed over a non-empty one, so when a concurrent writer publishes between the two renames,
    its result is moved aside too and the rename retried: the last writer wins and every published tree is whole.
    """
    for _ in range(attempts):
        old = path.with_name(f".{path.name}.old.{_owner()}.{uuid.uuid4().hex[:12]}")  # unique across writers
        try:
            os.replace(path, old)
        except FileNotFoundError:
            old = None
        try:
            os.replace(new, path)
            return
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    raise OSError(f"could not publish {path}: {attempts} concurrent writers replaced it first")


def _owner() -> str:
    """`<host hash>-<pid>`, put in temp names: a later run tells a dead writer's leftovers from a live one's."""
    return f"{_host()}-{os.getpid()}"


@functools.cache
def _host() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def _leftover(name: str, target: str) -> tuple[str, bool] | None:
    """("old" | "tmp", whether its writer is dead) if `name` is a temp or moved-aside entry of `target`, else None.

    Names without an owner (srpipe before owners were recorded) count as dead; entries of another host (a shared
    filesystem) are never judged from here.
    """
    t = re.escape(target)
    found = re.fullmatch(rf"\.{t}\.(old\.)?(?:([0-9a-f]{{6}})-(\d+)\.)?(?:[0-9a-f]{{12}}|[a-z0-9_]{{8}}\.tmp)", name)
    if found is None or bool(found.group(1)) == name.endswith(".tmp"):
        return None
    kind = "old" if found.group(1) else "tmp"
    if found.group(2) is None:
        return kind, True
    if found.group(2) != _host():
        return kind, False
    try:
        os.kill(int(found.group(3)), 0)
    except ProcessLookupError:
        return kind, True
    except OSError:  # alive, another user's
        return kind, False
    return kind, False


def sweep(path: str | os.PathLike[str]) -> None:
    """Repair what writers of `path` killed mid-way left beside it (a later run calls this before using `path`).

    A kill between the two renames of `_swap_in` leaves `path` missing and its previous tree hidden as
    `.<name>.old.*`: that tree is renamed back. Temp trees and files (`.<name>.*.tmp`) and moved-aside trees of
    dead writers are deleted; those of live writers (a concurrent run) are left alone.
    """
    path = Path(path)
    try:
        entries = [(p, _leftover(p.name, path.name)) for p in path.parent.iterdir() if p.name.startswith(".")]
    except OSError:
        return
    hidden = [p for p, what in entries if what == ("old", True)]
    dead = [p for p, what in entries if what == ("tmp", True)]
    if not path.exists() and (trees := [p for p in hidden if p.is_dir()]):
        newest = max(trees, key=lambda p: p.stat().st_mtime)
        os.replace(newest, path)
        hidden.remove(newest)
        log.warning("%s was missing (a writer was killed while replacing it): restored it from %s", path, newest.name)
    for leftover in hidden + dead:
        log.info("removing %s, left by a killed writer of %s", leftover, path.name)
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)

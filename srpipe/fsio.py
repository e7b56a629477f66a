"""Atomic file and directory writes: a reader never sees a torn file, a crash never leaves a half-written output."""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


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
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
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
        old = path.with_name(f".{path.name}.old.{uuid.uuid4().hex[:12]}")  # unique across processes and threads
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

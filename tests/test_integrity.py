"""File digests: sha256 like the catalog's, computed once per process while a file's size and mtime stay the same."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from srpipe import integrity
from srpipe.integrity import CorruptDataError, file_digest


def test_file_digest_is_the_tagged_sha256(tmp_path: Path) -> None:
    path = tmp_path / "a.u8"
    path.write_bytes(b"x" * 3_000_000)  # more than one read chunk
    assert file_digest(path) == "sha256:" + hashlib.sha256(b"x" * 3_000_000).hexdigest()


def test_a_file_is_read_once_until_it_changes(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "a.u8"
    path.write_bytes(b"abc")
    first = file_digest(path)
    reads = []
    real = integrity.provenance.file_digest
    monkeypatch.setattr(integrity.provenance, "file_digest", lambda p: reads.append(1) or real(p))
    assert file_digest(path) == first and reads == []
    path.write_bytes(b"abd")
    os.utime(path, ns=(1, 1))  # a rewrite changes the mtime (forced here: one clock tick could hold both writes)
    assert file_digest(path) == "sha256:" + hashlib.sha256(b"abd").hexdigest() and reads == [1]


def test_corrupt_data_is_a_value_error_so_the_cli_prints_one_line() -> None:
    from srpipe.cli import _error

    assert _error(CorruptDataError("x.pt: corrupt; rebuild it")) == ("x.pt: corrupt; rebuild it", 2)

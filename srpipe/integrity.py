"""Content digests that catch silent corruption: a flipped byte in weights or training data fails loudly, naming the
file and how to rebuild it, instead of scoring a few dB lower with exit status 0 (issue 14, item 4).

One algorithm everywhere (sha256, also what the download catalog and MANIFEST.json use): with SHA-NI it hashes at
about 1.4 GB/s on one core, so checking a store or a weights file costs a fraction of a second per GB.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from srpipe import provenance

ALGO = "sha256"


class CorruptDataError(ValueError):
    """A file's content differs from the digest recorded when it was written; the message says how to rebuild it."""


def new_hash() -> hashlib._Hash:
    return hashlib.new(ALGO)


def tagged(h: hashlib._Hash) -> str:
    """`sha256:<hex>`: the algorithm travels with the value, as in the dataset catalog."""
    return f"{h.name}:{h.hexdigest()}"


_seen: dict[tuple[str, int, int], str] = {}
_seen_lock = threading.Lock()


def file_digest(path: str | os.PathLike[str]) -> str:
    """`sha256:<hex>` of a file, computed once per process while its (size, mtime) stay the same.

    Trainings that share a process (Prefect threads, a Dask worker) open the same store many times; the cache makes
    that one read. A rewrite changes the mtime, so a rebuilt or altered file is hashed again.
    """
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    with _seen_lock:
        if key in _seen:
            return _seen[key]
    digest = f"{ALGO}:{provenance.file_digest(path)}"
    with _seen_lock:
        _seen[key] = digest
    return digest

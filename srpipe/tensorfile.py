"""Reading torch files as data only: a checkpoint or weights file never runs code, and every error names the file.

`torch.load(weights_only=True)` unpickles tensors and plain containers (dict, list, tuple, str, numbers) and refuses
everything else, so a crafted file cannot execute its payload. Its errors are rewritten here: they name the file
and the reason, and never repeat torch's advice to retry with `weights_only=False`, which would run a stranger's code.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any


class UnreadableFileError(ValueError):
    """A torch file cannot be loaded as data; the message names the file and says why."""


def _reason(e: BaseException, path: Path) -> str:
    text = str(e)
    if path.stat().st_size == 0:
        return "the file is empty"
    if isinstance(e, EOFError) or "failed finding central directory" in text or "Invalid argument" in text:
        return "the file is truncated or corrupt"
    if "PytorchStreamReader" in text or "Unsupported operand" in text or "invalid load key" in text:
        return "the file is corrupt (not a torch file, or a damaged one)"
    if "Weights only load failed" in text:
        found = re.search(r"GLOBAL ([\w.]+)", text)
        what = f" ({found.group(1)})" if found else ""
        return f"it holds objects other than tensors and plain data{what}; srpipe loads files as data only"
    return " ".join(line for line in text.splitlines() if "weights_only" not in line).strip() or type(e).__name__


def load(path: str | os.PathLike[str], what: str) -> Any:
    """The content of torch file `path` (a `what`, e.g. "checkpoint"), loaded on the CPU as data only.

    Raises:
        FileNotFoundError: there is no file at `path`.
        UnreadableFileError: empty, truncated, corrupt, or holding anything but tensors and plain data.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what}")
    try:
        with warnings.catch_warnings():  # "Detected pickle protocol 4" and the like: noise next to a clear error
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip, EOF and OS errors all mean "not a readable file of this kind"
        raise UnreadableFileError(f"{path}: not a readable {what}: {_reason(e, path)}") from e

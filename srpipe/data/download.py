"""Downloader engine: resumable, verified HTTP fetches (stdlib urllib only) and archive/folder normalisation.

`fetch` streams to `<dest>.part`, resumes with an HTTP Range request, retries transient failures with exponential
backoff, verifies size and checksum and only then renames the file into place. `extract` and `import_folder` turn an
archive or a folder into `<root>/<split>/<image>.png`, each split published by one atomic rename.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.client
import io
import json
import logging
import os
import re
import socket
import time
import urllib.error
import urllib.request
import zipfile
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING

from srpipe import __version__
from srpipe.data.catalog import SplitRule
from srpipe.data.images import IMAGE_SUFFIXES, ImageError, list_images
from srpipe.fsio import atomic_dir, write_json

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_USER_AGENT = f"srpipe/{__version__} (python-urllib)"
_PNG_MODES = {"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"}  # modes Pillow writes to PNG without conversion


class DownloadError(RuntimeError):
    """Every URL failed; `failures` holds one line per URL saying why."""

    def __init__(self, label: str, failures: Sequence[str]) -> None:
        self.failures = list(failures)
        super().__init__(f"{label}: download failed:\n" + "\n".join(f"  - {f}" for f in self.failures))


class ChecksumError(ValueError):
    """A file's size or checksum differs from the published one; the message names dataset, source and both values."""


class ExtractError(ValueError):
    """An archive or folder does not hold the images its layout promises."""


@dataclass(frozen=True)
class Fetched:
    path: Path
    source: str  # the URL (or mirror file) it came from
    sha256: str
    size: int


def _digests(path: Path, algo: str) -> tuple[str, str]:
    """(sha256, `algo` digest) in one read of the file."""
    sha, other = hashlib.sha256(), hashlib.new(algo)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            sha.update(chunk)
            other.update(chunk)
    return sha.hexdigest(), other.hexdigest()


def verify_file(path: Path, size: int | None, checksum: str | None, *, label: str, source: str) -> str:
    """Check `path` against the expected byte size and `sha256:`/`md5:` checksum; return its sha256.

    Raises:
        ChecksumError: naming `label` (the dataset and archive), `source`, the expected and the actual value.
    """
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise ChecksumError(f"{label}: {source} has {actual_size} bytes, expected {size}")
    algo, _, expected = (checksum or "sha256:").partition(":")
    sha, actual = _digests(path, algo)
    if expected and actual != expected:
        raise ChecksumError(f"{label}: checksum mismatch for {source}: expected {algo}:{expected}, got {algo}:{actual}")
    return sha


def warn_unpublished(label: str, source: str, sha256: str) -> None:
    log.warning("%s: no published checksum for %s; recording sha256:%s (trust on first use)", label, source, sha256)


def _sidecar(dest: Path) -> Path:
    return dest.with_name(dest.name + ".json")


def cached(dest: Path, *, size: int | None, checksum: str | None, label: str) -> Fetched | None:
    """A verified earlier download at `dest`, or None (a copy that fails verification is deleted).

    With no published checksum the sha256 recorded at first download (the `.json` sidecar) is what is checked.
    """
    if not dest.is_file():
        return None
    try:
        side = json.loads(_sidecar(dest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        side = {}
    expected = checksum or (f"sha256:{side['sha256']}" if side.get("sha256") else None)
    try:
        sha = verify_file(dest, size, expected, label=label, source=str(dest))
    except ChecksumError as e:
        log.warning("%s; deleting the cached copy", e)
        dest.unlink(missing_ok=True)
        _sidecar(dest).unlink(missing_ok=True)
        return None
    if expected is None:
        warn_unpublished(label, str(dest), sha)
        write_json(_sidecar(dest), {"file": dest.name, "source": f"cache:{dest}", "sha256": sha})
    return Fetched(dest, side.get("source", f"cache:{dest}"), sha, dest.stat().st_size)


@contextlib.contextmanager
def _locked(dest: Path) -> Iterator[None]:
    """Hold an exclusive lock on `<dest>.lock`, so two processes (or Prefect threads) never share one `.part`."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; concurrent fetches of one file are then the caller's concern
        yield
        return
    with open(dest.with_name(dest.name + ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _retryable(e: BaseException) -> bool:
    reason = getattr(e, "reason", e)
    if isinstance(reason, socket.gaierror):
        # The host name does not resolve: offline, no DNS, or a dead domain. Even EAI_AGAIN ("temporary failure",
        # what a machine without network reports) does not heal in the seconds a backoff waits: try the next source.
        return False
    if isinstance(e, urllib.error.HTTPError):  # before URLError/OSError: it is both
        return e.code >= 500 or e.code in (408, 429)
    return isinstance(e, (urllib.error.URLError, OSError, http.client.HTTPException))


def _attempt(url: str, part: Path, *, size: int | None, timeout: float, progress: bool) -> bool:
    """One HTTP request, appending to `part` when the server honours Range; True if it resumed.

    Raises:
        ConnectionError: the body ended before its Content-Length (a cut transfer); urllib does not raise for it.
    """
    from tqdm import tqdm

    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset >= size:
        if offset == size:
            return True  # complete from an earlier run; verification decides, and a mismatch earns a clean retry
        part.unlink()
        offset = 0
    headers = {"User-Agent": _USER_AGENT, **({"Range": f"bytes={offset}-"} if offset else {})}
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # our partial file does not fit the server's copy: start over
            part.unlink()
            raise ConnectionError(f"server refused resuming at byte {offset}; restarting") from e
        raise
    with resp:
        resumed = bool(offset) and resp.status == 206
        if resumed and not (resp.headers.get("Content-Range") or "").startswith(f"bytes {offset}-"):
            part.unlink()
            raise ConnectionError(f"asked for bytes {offset}- and got {resp.headers.get('Content-Range')}; restarting")
        if resumed:
            log.info("resuming %s at byte %d", url, offset)
        elif offset:
            log.info("%s ignored the Range request; restarting from byte 0", url)
            offset = 0
        length = resp.headers.get("Content-Length")
        expected = offset + int(length) if length is not None else None
        received = offset
        # disable=None lets tqdm switch itself off when stderr is not a terminal (DVC, CI, Prefect logs).
        bar = tqdm(
            total=size or expected,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=part.name.removesuffix(".part"),
            disable=None if progress else True,
            leave=False,
        )
        with open(part, "ab" if resumed else "wb") as f, bar:
            while chunk := resp.read(_CHUNK):
                f.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if expected is not None and received < expected:
        raise ConnectionError(f"connection closed at byte {received} of {expected}")
    return resumed


def _transfer(
    url: str, part: Path, *, size: int | None, timeout: float, retries: int, progress: bool, backoff: float, label: str
) -> bool:
    """`_attempt` with retries on transient errors; a try that made progress resets the count. True if it resumed."""
    resumed, strikes = False, 0
    best = part.stat().st_size if part.exists() else 0
    while True:
        try:
            return _attempt(url, part, size=size, timeout=timeout, progress=progress) or resumed
        except Exception as e:
            if not _retryable(e):
                raise
            have = part.stat().st_size if part.exists() else 0
            resumed = resumed or have > 0
            if have > best:  # progress: a long download on a flaky line is not capped by `retries` in total
                best, strikes = have, 0
            strikes += 1
            if strikes > retries:
                raise
            delay = backoff * 2 ** (strikes - 1)
            log.warning(
                "%s: %s: %s; retry %d/%d in %.2gs (%d bytes so far)", label, url, e, strikes, retries, delay, have
            )
            time.sleep(delay)


def fetch(
    urls: Sequence[str],
    dest: str | os.PathLike[str],
    *,
    size: int | None = None,
    checksum: str | None = None,
    timeout: float = 30,
    retries: int = 4,
    progress: bool = True,
    backoff: float = 1.0,
    label: str = "",
) -> Fetched:
    """Download the file at the first working URL to `dest`, verified; reuse a verified `dest` with no request.

    Transient failures (connection errors, timeouts, 5xx, 408, 429) are retried with backoff `backoff * 2**k` and the
    transfer resumes from `<dest>.part`; other 4xx move on to the next URL, as does a checksum mismatch, whose file
    is deleted. With `checksum=None` the sha256 is computed, warned about and kept beside `dest` for next time.

    Raises:
        DownloadError: every URL failed; the message has one line per URL with the reason.
    """
    dest = Path(dest)
    label = label or dest.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    failures: list[str] = []
    with _locked(dest):
        if hit := cached(dest, size=size, checksum=checksum, label=label):
            return hit
        for url in urls:
            for fresh in (False, True):  # a resumed file that fails verification gets one clean download
                log.info("%s: downloading %s (%s bytes)", label, url, size if size is not None else "unknown")
                try:
                    resumed = _transfer(
                        url,
                        part,
                        size=size,
                        timeout=timeout,
                        retries=retries,
                        progress=progress,
                        backoff=backoff,
                        label=label,
                    )
                    sha = verify_file(part, size, checksum, label=label, source=url)
                except ChecksumError as e:
                    part.unlink(missing_ok=True)
                    log.error("%s; the file was deleted", e)
                    if resumed and not fresh:
                        continue
                    failures.append(f"{e} (file deleted)")
                except (ValueError, OSError, http.client.HTTPException) as e:  # ValueError: a malformed URL
                    failures.append(f"{url}: {e}")
                    log.warning("%s: %s failed: %s", label, url, e)
                else:
                    if checksum is None:
                        warn_unpublished(label, url, sha)
                    # The sidecar first: whoever sees `dest` (cached() runs unlocked) also sees its source and hash.
                    write_json(_sidecar(dest), {"file": dest.name, "source": url, "sha256": sha})
                    os.replace(part, dest)
                    log.info("%s: saved %s (%d bytes)", label, dest, dest.stat().st_size)
                    return Fetched(dest, url, sha, dest.stat().st_size)
                break
    raise DownloadError(label, failures or ["no URL to try"])


def _gray_palette(im: Image.Image) -> bool:
    palette = im.getpalette()
    return palette is not None and all(
        palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette), 3)
    )


def normalize_image(src: IO[bytes], name: str, dst: Path) -> None:
    """Write the image read from `src` to `dst` as PNG without changing a pixel.

    A PNG is checked (chunk CRCs, full decode) and copied byte for byte. Other formats are decoded and re-encoded,
    EXIF orientation applied (PNG readers ignore it) and one-channel images kept one-channel, gray palettes as L.

    Raises:
        ImageError: the data cannot be decoded; the message names `name`.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    data = src.read()
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format == "PNG":
                im.verify()  # catches a missing IEND/CRC error that a decode alone lets through
                with Image.open(io.BytesIO(data)) as again:
                    again.load()
                dst.write_bytes(data)
                return
            im.load()
            out = ImageOps.exif_transpose(im)
            if out.mode == "P" and _gray_palette(out):
                out = out.convert("L")
            elif out.mode not in _PNG_MODES:
                log.warning("%s: mode %s has no PNG equivalent; storing it as RGB", name, out.mode)
                out = out.convert("RGB")
            out.save(dst, format="PNG")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{name}: cannot decode image ({e})") from e


def _wanted(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return (
        bool(parts)
        and name.lower().endswith(IMAGE_SUFFIXES)
        and not any(p.startswith((".", "__MACOSX")) for p in parts)
    )


def _output_names(paths: Sequence[str]) -> list[str]:
    """File stems, except that stems occurring twice in one split get their whole path, so nothing is overwritten."""
    stems = [PurePosixPath(p).stem for p in paths]
    twice = {s for s, n in Counter(stems).items() if n > 1}
    return [re.sub(r"[^\w-]+", "_", p).strip("_") if s in twice else s for p, s in zip(paths, stems)]


def _write_split(dest_root: Path, split: str, items: Sequence[tuple[str, Callable[[], IO[bytes]]]]) -> int:
    """Normalise `(name, opener)` items into `dest_root/split/`, which appears in one rename when all are written."""
    from tqdm import tqdm

    names = _output_names([n for n, _ in items])
    with atomic_dir(dest_root / split) as tmp:
        # disable=None: a bar on a terminal (DIV2K's 800 2K PNGs take minutes), silence in logs.
        bar = tqdm(zip(items, names), total=len(items), desc=f"{split} images", unit="img", disable=None)
        for (name, opener), out in bar:
            with opener() as f:
                normalize_image(f, name, tmp / f"{out}.png")
    return len(items)


@contextlib.contextmanager
def _members(archive: Path) -> Iterator[list[tuple[str, Callable[[], IO[bytes]]]]]:
    """Regular-file members as (normalised path, opener), in archive order (cheap reads of a .tar.gz)."""
    import tarfile

    def clean(name: str) -> str:
        name = name.replace("\\", "/")
        while name.startswith("./"):
            name = name[2:]
        return name.lstrip("/")

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            yield [(clean(i.filename), lambda i=i: z.open(i)) for i in z.infolist() if not i.is_dir()]
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive, "r:*") as t:
            yield [(clean(m.name), lambda m=m: t.extractfile(m)) for m in t.getmembers() if m.isfile()]
    else:
        raise ExtractError(f"{archive}: not a zip or tar archive")


def extract(
    archive: str | os.PathLike[str], dest_root: str | os.PathLike[str], layout: Sequence[SplitRule]
) -> dict[str, int]:
    """Normalise the archive members that `layout` selects into `dest_root/<split>/<image>.png`; return the counts.

    Members are read one by one (no extractall, so no path traversal); folders are flattened, non-images skipped.

    Raises:
        ExtractError: not an archive, or a split matched no image or not its catalogued count (checked up front).
        ImageError: a selected member is not a decodable image.
    """
    archive, dest_root = Path(archive), Path(dest_root)
    counts: dict[str, int] = {}
    with _members(archive) as members:
        chosen: dict[str, list[tuple[str, Callable[[], IO[bytes]]]]] = {r.split: [] for r in layout}
        for name, opener in members:
            rule = next((r for r in layout if any(fnmatchcase(name, g) for g in r.globs)), None)
            if rule is not None and _wanted(name):
                chosen[rule.split].append((name, opener))
        for rule in layout:
            found = len(chosen[rule.split])
            if found == 0 or (rule.count is not None and found != rule.count):
                expected = rule.count if rule.count is not None else "some"
                raise ExtractError(
                    f"{archive.name}: split {rule.split!r} expects {expected} images matching "
                    f"{list(rule.globs)}, the archive has {found}"
                )
        for rule in layout:
            counts[rule.split] = _write_split(dest_root, rule.split, chosen[rule.split])
            log.info("%s: %d images -> %s", archive.name, counts[rule.split], dest_root / rule.split)
    return counts


def import_folder(
    src: str | os.PathLike[str],
    dest_root: str | os.PathLike[str],
    default_split: str,
    splits: Collection[str] = ("train", "valid", "test"),
) -> dict[str, int]:
    """Normalise a folder of images into `dest_root/<split>/`.

    Images directly inside go to `default_split`; a subfolder named like one of `splits` (any case) becomes that
    split, and one named `HR` (the EDSR/BasicSR name for the originals) goes to `default_split`. Other subfolders
    are skipped with a warning rather than turned into oddly named splits; deeper folders are ignored.

    Raises:
        FileNotFoundError: `src` is not a folder.
        ExtractError: it holds no usable image.
        ImageError: an image cannot be decoded.
    """
    src, dest_root = Path(src), Path(dest_root)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: not a folder")
    known = {s.lower(): s for s in (*splits, default_split)} | {"hr": default_split}
    groups: dict[str, list[Path]] = {}
    if flat := list_images(src):
        groups[default_split] = flat
    for sub in sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not (images := list_images(sub)):
            continue
        if (split := known.get(sub.name.lower())) is None:
            log.warning("%s: skipping subfolder %s: not a split name (%s)", src, sub.name, ", ".join(sorted(known)))
            continue
        groups.setdefault(split, []).extend(images)
    if not groups:
        raise ExtractError(f"{src}: no images directly inside or in split subfolders ({', '.join(sorted(known))})")
    counts = {}
    for split, files in groups.items():
        items = [(str(p.relative_to(src)), functools.partial(p.open, "rb")) for p in files]
        counts[split] = _write_split(dest_root, split, items)
        log.info("%s: %d images -> %s", src, counts[split], dest_root / split)
    return counts

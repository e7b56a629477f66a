"""Stage `download`: make `<raw>/<dataset>/<split>/*.png` exist for each requested dataset, offline when it can.

Per dataset the first source that works wins: a `local` folder declared for it, then each mirror in order (a folder
holding `<dataset>/` or the official archive files, or a base URL serving those files), then the embedded copy or
the catalog's official URLs. A finished dataset carries `MANIFEST.json` (source, files, sha256) and is never fetched
again; archives stay in the download cache, so re-extracting never re-downloads. The manifest also says whether
the images were checked (`verified`): archives against their published checksums, folder copies against the
catalog's per-image pixel digests; where the catalog has none, `"verified": false` and `verification` say so.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from srpipe.data.catalog import ArchiveSpec, Catalog, DatasetSpec, get_dataset
from srpipe.data.download import (
    ChecksumError,
    DownloadError,
    ExtractError,
    Fetched,
    cached,
    extract,
    fetch,
    import_folder,
    verify_file,
    warn_unpublished,
)
from srpipe.data.images import ImageError, pixel_digest
from srpipe.data.sample import write_sample
from srpipe.fsio import atomic_dir, sweep, write_json
from srpipe.provenance import file_digest

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST.json"
UNAVAILABLE = "UNAVAILABLE.txt"
MIRRORS_ENV = "SRPIPE_MIRRORS"
_NO_LOCAL: Mapping[str, str] = MappingProxyType({})


class DatasetUnavailableError(RuntimeError):
    """No source could provide a dataset; the message lists each failure and how to supply a copy."""

    def __init__(self, dataset: str, failures: Sequence[str], hint: str) -> None:
        self.dataset, self.failures = dataset, list(failures)
        lines = "\n".join(f"  - {f}" for f in self.failures) or "  - no source to try"
        super().__init__(f"dataset {dataset!r} is unavailable:\n{lines}\n{hint}")


@dataclass
class _Run:
    """What one `download` call resolves every dataset against."""

    raw_dir: Path
    cache_dir: Path
    mirrors: list[str]
    timeout: float
    retries: int
    progress: bool
    failures: list[str] = field(default_factory=list)  # per dataset; reset by `_ingest`
    archives: list[dict[str, str | None]] = field(default_factory=list)
    checked: tuple[bool, str] = (False, "")  # per dataset: (verified, how), for MANIFEST.json


def env_mirrors() -> list[str]:
    """Mirrors from `$SRPIPE_MIRRORS`, separated by os.pathsep; on POSIX a `:` inside a URL does not split it."""
    value = os.environ.get(MIRRORS_ENV, "").strip()
    if not value:
        return []
    parts = re.split(r":(?!//|\d)", value) if os.pathsep == ":" else value.split(os.pathsep)
    return [p.strip() for p in parts if p.strip()]


def _is_url(mirror: str) -> bool:
    return urllib.parse.urlsplit(mirror).scheme in ("http", "https", "ftp")


def _folder(mirror: str) -> Path:
    return Path(urllib.request.url2pathname(mirror[len("file://") :])) if mirror.startswith("file://") else Path(mirror)


def _hint(spec: DatasetSpec) -> str:
    if spec.local_only:
        return spec.note
    files = ", ".join(s.archive.file for s in spec.sources)
    return (
        f"To use a copy obtained elsewhere, put {files} (or a {spec.name}/ folder of images) in a folder, or serve "
        f"them under a base URL, and pass --mirror DIR_OR_URL (params: data.mirrors; env: {MIRRORS_ENV}), "
        f"or pass a folder of the images with --local {spec.name}=DIR."
    )


def _dataset_folder(mirror: Path, name: str) -> Path | None:
    """`mirror/<name>/`, matched exactly or else case-insensitively (`set5/` serves Set5)."""
    if (mirror / name).is_dir():
        return mirror / name
    if mirror.is_dir():
        return next((p for p in sorted(mirror.iterdir()) if p.is_dir() and p.name.lower() == name.lower()), None)
    return None


def _record(run: _Run, archive: ArchiveSpec, got: Fetched, origin: str) -> tuple[Path, str]:
    run.archives.append({"file": archive.file, "source": origin, "sha256": got.sha256, "published": archive.checksum})
    return got.path, origin


def _obtain(spec: DatasetSpec, archive: ArchiveSpec, run: _Run) -> tuple[Path, str]:
    """A verified local path of `archive`: cache, then folder mirrors, then mirror URLs and official URLs."""
    label = f"{spec.name} ({archive.file})"
    url_mirrors = [m.rstrip("/") for m in run.mirrors if _is_url(m)]

    def origin(source: str) -> str:
        base = next((m for m in url_mirrors if source.startswith(m + "/")), None)
        return f"mirror:{base}" if base else source if source.startswith("cache:") else f"url:{source}"

    dest = run.cache_dir / archive.file
    if hit := cached(dest, size=archive.size, checksum=archive.checksum, label=label):
        log.info("%s: using the cached %s", label, dest)
        return _record(run, archive, hit, origin(hit.source))
    for mirror in (m for m in run.mirrors if not _is_url(m)):
        path = _folder(mirror) / archive.file
        if not path.is_file():
            continue
        try:  # never delete a mirror's file: it is not ours
            sha = verify_file(path, archive.size, archive.checksum, label=label, source=str(path))
        except ValueError as e:
            log.warning("%s; skipping this mirror", e)
            run.failures.append(str(e))
            continue
        if archive.checksum is None:
            warn_unpublished(label, str(path), sha)
        log.info("%s: using %s from mirror %s", label, archive.file, mirror)
        return _record(run, archive, Fetched(path, str(path), sha, path.stat().st_size), f"mirror:{mirror}")
    urls = [f"{m}/{archive.file}" for m in url_mirrors] + list(archive.urls)
    try:
        got = fetch(
            urls,
            dest,
            size=archive.size,
            checksum=archive.checksum,
            timeout=run.timeout,
            retries=run.retries,
            progress=run.progress,
            label=label,
        )
    except DownloadError as e:
        raise DatasetUnavailableError(spec.name, [*run.failures, *e.failures], _hint(spec)) from None
    return _record(run, archive, got, origin(got.source))


def _splits(spec: DatasetSpec) -> set[str]:
    """Split names a folder of this dataset may use: the generic ones plus those of its archives' layouts."""
    return {"train", "valid", "test"} | {rule.split for source in spec.sources for rule in source.layout}


def _clear(folder: Path) -> None:
    for child in folder.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()


def _check_copy(spec: DatasetSpec, tmp: Path, folder: Path) -> tuple[bool, str]:
    """Compare the images copied from `folder` into `tmp` with the catalog's pixel digests: (verified, how).

    Raises:
        ChecksumError: in a split the catalog lists, an image differs, is missing or is not part of the dataset.
    """
    known = dict(spec.images)
    if not known:
        return False, f"copied from the folder {folder}; the catalog has no per-image checksums for {spec.name}"
    listed = {key.split("/")[0] for key in known}
    copied = {p.relative_to(tmp).with_suffix("").as_posix(): p for p in sorted(tmp.rglob("*.png"))}
    checked = {key: p for key, p in copied.items() if key.split("/")[0] in listed}
    changed = [key for key, p in checked.items() if key in known and pixel_digest(p) != known[key]]
    problems = {
        "changed": changed,
        "missing": sorted(known.keys() - checked.keys()),
        "not in the dataset": sorted(checked.keys() - known.keys()),
    }
    if any(problems.values()):
        what = "; ".join(f"{kind}: {', '.join(keys)}" for kind, keys in problems.items() if keys)
        raise ChecksumError(f"{spec.name}: {folder} does not match the catalog's image checksums ({what})")
    if unlisted := sorted({key.split("/")[0] for key in copied} - listed):
        return False, f"{', '.join(sorted(listed))}: match the catalog's pixel sha256; {', '.join(unlisted)}: unchecked"
    return True, f"every image matches the catalog's pixel sha256 (copied from the folder {folder})"


def _import_checked(spec: DatasetSpec, folder: Path, tmp: Path, run: _Run) -> None:
    import_folder(folder, tmp, spec.default_split, _splits(spec))
    run.checked = _check_copy(spec, tmp, folder)
    if not run.checked[0]:
        log.warning("%s: not verified: %s", spec.name, run.checked[1])


def _ingest(spec: DatasetSpec, tmp: Path, local: str | None, run: _Run) -> str:
    """Fill `tmp` with the dataset's splits from the first source that works; return that source."""
    run.failures, run.archives, run.checked = [], [], (False, "")
    if local is not None:  # an explicit folder: its errors are the user's to see, not a reason to fall back
        if not Path(local).is_dir():
            raise FileNotFoundError(f"{spec.name}: the local folder {local} does not exist")
        _import_checked(spec, Path(local), tmp, run)
        return f"local:{local}"
    for mirror in (m for m in run.mirrors if not _is_url(m)):
        if (folder := _dataset_folder(_folder(mirror), spec.name)) is None:
            continue
        try:
            _import_checked(spec, folder, tmp, run)
            return f"mirror:{mirror}"
        except (ExtractError, ImageError, ChecksumError, OSError) as e:
            log.warning("%s: mirror folder %s is unusable: %s", spec.name, folder, e)
            run.failures.append(f"mirror folder {folder}: {e}")
            _clear(tmp)
    if spec.embedded:
        write_sample(tmp)
        run.checked = (False, "written from the images bundled with scikit-image; the catalog has no checksums")
        return "embedded"
    if spec.local_only:
        reason = "licence-gated: no download URL; only a --local folder or a mirror folder can provide it"
        raise DatasetUnavailableError(spec.name, [*run.failures, reason], _hint(spec))
    origins = []
    for source in spec.sources:
        path, origin = _obtain(spec, source.archive, run)
        try:
            extract(path, tmp, source.layout)
        except (ExtractError, ImageError) as e:
            raise DatasetUnavailableError(spec.name, [*run.failures, f"{origin}: {e}"], _hint(spec)) from None
        origins.append(origin)
    unpublished = [str(a["file"]) for a in run.archives if not a["published"]]
    if unpublished:
        run.checked = (False, f"no published checksum for {', '.join(unpublished)} (sha256 recorded on first use)")
    else:
        run.checked = (True, "every archive matches its published checksum")
    return " + ".join(dict.fromkeys(origins))


def _complete(folder: Path) -> dict | None:
    """The manifest of a finished dataset folder, or None if it is missing, unreadable or a listed file is gone."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
        if all((folder / rel).is_file() and (folder / rel).stat().st_size == f["bytes"] for rel, f in files.items()):
            return manifest
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _one(spec: DatasetSpec, local: str | None, optional: bool, run: _Run) -> dict:
    dest = run.raw_dir / spec.name
    sweep(dest)  # a download killed earlier: its temp tree goes, a dataset hidden mid-swap comes back
    done = _complete(dest)
    if done is not None and "verified" not in done and spec.images:
        done = None  # copied before copies were checked, and the catalog can check this one now
    if done is not None and (local is None or done.get("source") == f"local:{local}"):
        log.info("%s: already complete in %s (source %s); nothing to fetch", spec.name, dest, done["source"])
        return {"source": done["source"], "images": done["images"]}
    try:
        with atomic_dir(dest) as tmp:
            source = _ingest(spec, tmp, local, run)
            files = {p.relative_to(tmp).as_posix(): p for p in sorted(tmp.rglob("*.png"))}
            images = dict(sorted(Counter(rel.split("/")[0] for rel in files).items()))
            table = {rel: {"bytes": p.stat().st_size, "sha256": file_digest(p)} for rel, p in files.items()}
            manifest = {"dataset": spec.name, "source": source, "images": images, "archives": run.archives}
            manifest |= {"verified": run.checked[0], "verification": run.checked[1]}
            write_json(tmp / MANIFEST, {**manifest, "files": table})
    except DatasetUnavailableError as e:
        if not optional:
            raise
        log.warning("%s: optional dataset skipped: %s", spec.name, e)
        with atomic_dir(dest) as tmp:  # an output for DVC, and a marker later stages read as "skip this one"
            (tmp / UNAVAILABLE).write_text(f"{e}\n", encoding="utf-8")
        return {"source": "unavailable", "images": {}, "reason": str(e)}
    log.info("%s: %s from %s", spec.name, ", ".join(f"{n} {s}" for s, n in images.items()), source)
    return {"source": source, "images": images}


def download(
    datasets: Sequence[str],
    raw_dir: Path,
    *,
    optional: Collection[str] = (),
    mirrors: Sequence[str] = (),
    local: Mapping[str, str] = _NO_LOCAL,
    cache_dir: Path | None = None,
    timeout: float = 30,
    retries: int = 4,
    progress: bool = True,
    catalog: Catalog | None = None,
) -> dict:
    """Fetch, verify and normalise `datasets` into `raw_dir/<dataset>/<split>/<image>.png`.

    Args:
        datasets: catalog names (case-insensitive); unknown names fail before any I/O.
        raw_dir: the stage output root.
        optional: datasets that may be missing: they get `<raw>/<dataset>/UNAVAILABLE.txt` instead of an error.
        mirrors: folders or base URLs tried before the official URLs, followed by those in `$SRPIPE_MIRRORS`.
        local: dataset name -> folder of its images (flat: the catalog's default split; or split subfolders).
        cache_dir: where downloaded archives are kept; default `raw_dir/../cache/downloads`.
        timeout: seconds per connection attempt and per read.
        retries: retries per URL on transient errors.
        progress: show tqdm bars (tqdm itself hides them when stderr is not a terminal).
        catalog: a catalog other than the packaged one (tests, private catalogs).

    Returns:
        Per dataset `{"source": ..., "images": {split: count}}`; source is "embedded", "local:<dir>",
        "mirror:<dir or url>", "url:<url>" (joined with " + " when archives came from several) or "unavailable".

    Raises:
        DatasetUnavailableError: a required dataset has no working source; the message says how to add a mirror.
        UnknownDatasetError: a name is not in the catalog.
    """
    specs = [get_dataset(name, catalog) for name in datasets]
    local_dirs = {get_dataset(name, catalog).name: str(folder) for name, folder in local.items()}
    optional_names = {get_dataset(name, catalog).name for name in optional}
    raw_dir = Path(raw_dir)
    run = _Run(
        raw_dir=raw_dir,
        cache_dir=Path(cache_dir) if cache_dir is not None else raw_dir.parent / "cache" / "downloads",
        mirrors=[str(m) for m in mirrors] + env_mirrors(),
        timeout=timeout,
        retries=retries,
        progress=progress,
    )
    return {
        spec.name: _one(spec, local_dirs.get(spec.name), spec.name in optional_names, run)
        for spec in dict.fromkeys(specs)
    }

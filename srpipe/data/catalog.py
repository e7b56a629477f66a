"""The dataset catalog as typed, validated data: archives (URLs, size, checksum) and how their members map to splits.

The facts live in `catalog.yaml` beside this module; this file only parses and checks them, so a typo in the YAML
fails loudly at load time instead of as a missing image three stages later.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_CHECKSUM = re.compile(r"^(sha256:[0-9a-f]{64}|md5:[0-9a-f]{32})$")
_SPLIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class CatalogError(ValueError):
    """The catalog YAML is malformed; the message says where."""


class UnknownDatasetError(LookupError):
    """A dataset name that the catalog does not hold; the message lists the known names."""


@dataclass(frozen=True)
class ArchiveSpec:
    file: str  # the official file name: mirrors and the download cache hold the archive under it
    urls: tuple[str, ...]  # official URL first, then known mirrors
    size: int | None  # bytes; None = not published
    checksum: str | None  # "sha256:<hex>" or "md5:<hex>"; None = not published, trust on first use


@dataclass(frozen=True)
class SplitRule:
    split: str
    globs: tuple[str, ...]  # fnmatch patterns on the member path; `*` also crosses `/`
    count: int | None  # images the archive must yield for this split


@dataclass(frozen=True)
class SourceSpec:
    archive: ArchiveSpec
    layout: tuple[SplitRule, ...]


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    licence: str
    homepage: str
    default_split: str  # where a flat folder of images goes: `test` for benchmarks, `train` for training sets
    sources: tuple[SourceSpec, ...] = ()
    embedded: bool = False  # ships with srpipe's dependencies (the `sample` set): never fetched
    local_only: bool = False  # licence-gated: only a local or mirror folder can provide it
    note: str = ""  # how to obtain a local_only dataset
    # "<split>/<image stem>" -> pixel sha256 (srpipe.data.images.pixel_digest): what a folder copy is checked against
    images: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Catalog:
    datasets: Mapping[str, DatasetSpec]

    def names(self) -> list[str]:
        return list(self.datasets)

    def get(self, name: str) -> DatasetSpec:
        """The dataset called `name` (exact match first, then case-insensitive, so `set5` works on the CLI)."""
        if name in self.datasets:
            return self.datasets[name]
        folded = [n for n in self.datasets if n.lower() == name.lower()]
        if len(folded) == 1:
            return self.datasets[folded[0]]
        raise UnknownDatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(self.names())}")


def _take(entry: Mapping[str, Any], where: str, required: set[str], optional: set[str]) -> dict[str, Any]:
    """Check an entry's keys: a misspelt key is an error here, never a silently ignored option."""
    if not isinstance(entry, Mapping):
        raise CatalogError(f"{where}: expected a mapping, got {type(entry).__name__}")
    missing, unknown = required - entry.keys(), entry.keys() - required - optional
    if missing or unknown:
        raise CatalogError(f"{where}: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}")
    return dict(entry)


def _archive(file: str, entry: Mapping[str, Any]) -> ArchiveSpec:
    where = f"archives.{file}"
    e = _take(entry, where, {"urls", "size", "checksum"}, set())
    urls = e["urls"]
    if not isinstance(urls, list) or not all(isinstance(u, str) and "://" in u for u in urls):
        raise CatalogError(f"{where}.urls: expected a list of URLs")
    if e["size"] is not None and (not isinstance(e["size"], int) or e["size"] <= 0):
        raise CatalogError(f"{where}.size: expected a positive byte count or null")
    if e["checksum"] is not None and not _CHECKSUM.match(str(e["checksum"])):
        raise CatalogError(f"{where}.checksum: expected sha256:<64 hex> or md5:<32 hex> or null, got {e['checksum']}")
    return ArchiveSpec(file, tuple(urls), e["size"], e["checksum"])


def _split_rule(split: str, entry: Any, where: str) -> SplitRule:
    if not _SPLIT.match(str(split)):
        raise CatalogError(f"{where}: bad split name {split!r}")
    e = _take(entry, f"{where}.{split}", {"glob"}, {"count"})
    globs = (e["glob"],) if isinstance(e["glob"], str) else tuple(e["glob"])
    count = e.get("count")
    if not globs or not all(isinstance(g, str) and g for g in globs):
        raise CatalogError(f"{where}.{split}.glob: expected a pattern or a list of patterns")
    if count is not None and (not isinstance(count, int) or count <= 0):
        raise CatalogError(f"{where}.{split}.count: expected a positive integer")
    return SplitRule(str(split), globs, count)


def _images(entry: Any, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(entry, Mapping):
        raise CatalogError(f"{where}: expected a mapping of <split>/<image> to sha256:<hex>")
    for key, digest in entry.items():
        split, _, stem = str(key).partition("/")
        if not (_SPLIT.match(split) and stem and "/" not in stem and re.match(r"^sha256:[0-9a-f]{64}$", str(digest))):
            raise CatalogError(f"{where}.{key}: expected <split>/<image>: sha256:<64 hex>, got {digest}")
    return tuple(sorted((str(k), str(v)) for k, v in entry.items()))


def _dataset(name: str, entry: Mapping[str, Any], archives: Mapping[str, ArchiveSpec]) -> DatasetSpec:
    where = f"datasets.{name}"
    flags = {"sources", "embedded", "local_only", "note", "images"}
    e = _take(entry, where, {"description", "licence", "homepage", "default_split"}, flags)
    sources, seen = [], set()
    for i, src in enumerate(e.get("sources") or []):
        s = _take(src, f"{where}.sources[{i}]", {"archive", "layout"}, set())
        if s["archive"] not in archives:
            raise CatalogError(f"{where}.sources[{i}]: unknown archive {s['archive']!r}")
        layout = tuple(_split_rule(k, v, f"{where}.sources[{i}].layout") for k, v in (s["layout"] or {}).items())
        if not layout:
            raise CatalogError(f"{where}.sources[{i}]: empty layout")
        for rule in layout:
            # Two archives writing one split would make the second replace the first's images.
            if rule.split in seen:
                raise CatalogError(f"{where}: split {rule.split!r} comes from more than one source")
            seen.add(rule.split)
        sources.append(SourceSpec(archives[s["archive"]], layout))
    spec = DatasetSpec(
        name=name,
        description=str(e["description"]).strip(),
        licence=str(e["licence"]).strip(),
        homepage=str(e["homepage"]),
        default_split=str(e["default_split"]),
        sources=tuple(sources),
        embedded=bool(e.get("embedded", False)),
        local_only=bool(e.get("local_only", False)),
        note=str(e.get("note") or "").strip(),
        images=_images(e.get("images") or {}, f"{where}.images"),
    )
    if (spec.embedded or spec.local_only) == bool(spec.sources):
        raise CatalogError(f"{where}: needs sources, unless it is embedded or local_only (then it has none)")
    return spec


def parse_catalog(data: Mapping[str, Any]) -> Catalog:
    """Build a validated Catalog from the YAML's parsed mapping.

    Raises:
        CatalogError: a missing or unknown key, a bad checksum, size, split or archive reference.
    """
    top = _take(data, "catalog", {"archives", "datasets"}, set())
    archives = {str(f): _archive(str(f), e) for f, e in (top["archives"] or {}).items()}
    datasets = {str(n): _dataset(str(n), e, archives) for n, e in (top["datasets"] or {}).items()}
    return Catalog(datasets)


def read_catalog(path: str | os.PathLike[str]) -> Catalog:
    """Parse and validate a catalog YAML file (the packaged one, or a custom one for tests and private mirrors)."""
    import yaml  # imported here: nothing heavy at `import srpipe.data.catalog`

    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    try:
        return parse_catalog(data)
    except CatalogError as e:
        raise CatalogError(f"{path}: {e}") from None


@functools.cache
def load_catalog() -> Catalog:
    """The catalog packaged with srpipe, read once per process."""
    from importlib.resources import as_file, files

    # Resolved through the `srpipe` package (which has an __init__), so this works installed, editable or zipped.
    with as_file(files("srpipe") / "data" / "catalog.yaml") as path:
        return read_catalog(Path(path))


def get_dataset(name: str, catalog: Catalog | None = None) -> DatasetSpec:
    """Look a dataset up by name in `catalog` (default: the packaged one).

    Raises:
        UnknownDatasetError: no such dataset; the message lists the known names.
    """
    return (catalog or load_catalog()).get(name)

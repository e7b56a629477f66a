"""Stage `import`: the authors' released checkpoint → an srpipe weights file (card with provenance).

`import_weights` converts a file the user has; `import_released` finds a catalog entry (srpipe/data/released.yaml)
through the same cache → mirror folders → URLs order as datasets (`--mirror`, params `data.mirrors`,
`$SRPIPE_MIRRORS`), verifies its size and sha256, converts it and keeps the result in a local cache.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from srpipe.data.download import DownloadError, cached, fetch, verify_file
from srpipe.provenance import file_digest
from srpipe.released import FORMATS, ORIGIN_RELEASED, ReleasedSpec, convert_file, get_released
from srpipe.stages.download import _folder, _is_url, env_mirrors
from srpipe.weights import WeightsCard, read_card, save_weights

log = logging.getLogger(__name__)


class WeightsUnavailableError(RuntimeError):
    """No source could provide a released file; the message lists each failure and how to supply a copy."""


def import_weights(
    src: Path,
    model: str,
    scale: int,
    out: Path,
    fmt: str | None = None,
    config: str = "paper",
    *,
    source: str = "",
    training_data: str = "",
    variant: str = "",
) -> dict[str, Any]:
    """Convert the checkpoint `src` for `model` × `scale` (`config`: e.g. SRCNN's "9-1-5") and write `out`."""
    state, name = convert_file(src, model, scale, config, fmt)
    color = "rgb" if FORMATS[name].reader == "torch" else "y"
    card = WeightsCard(
        model=model,
        scale=scale,
        config=config,
        color=color,
        note=f"released weights ({variant or model}), converted from {name}",
        origin=ORIGIN_RELEASED,
        source=source or str(Path(src).resolve()),
        source_sha256=file_digest(src),
        training_data=training_data,
        variant=variant,
    )
    save_weights(out, card, state)
    log.info("import: %s (%s) -> %s (%s x%d, config %s, %s)", src, name, out, model, scale, config, color)
    return {"out": str(out), "format": name, "model": model, "scale": scale, "config": config, "color": color}


def obtain(spec: ReleasedSpec, cache_dir: Path, mirrors: Sequence[str] = (), progress: bool = True) -> Path:
    """A verified local copy of `spec`'s file: the download cache, mirror folders (<m>/<folder>/<file> or
    <m>/<file>), then mirror URLs and the official URLs, downloaded into `cache_dir`."""
    mirrors = [*map(str, mirrors), *env_mirrors()]
    label, failures = f"released {spec.name} ({spec.file})", []
    dest = Path(cache_dir) / spec.file
    if hit := cached(dest, size=spec.size, checksum=spec.checksum, label=label):
        return hit.path
    for m in (m for m in mirrors if not _is_url(m)):
        for path in (_folder(m) / spec.folder / spec.file, _folder(m) / spec.file):
            if path.is_file():
                try:
                    verify_file(path, spec.size, spec.checksum, label=label, source=str(path))
                    log.info("%s: using mirror %s", label, path)
                    return path
                except ValueError as e:
                    failures.append(str(e))
        failures.append(f"mirror {m}: no {spec.folder}/{spec.file}")
    urls = [f"{m.rstrip('/')}/{spec.folder}/{spec.file}" for m in mirrors if _is_url(m)] + list(spec.urls)
    try:
        return fetch(urls, dest, size=spec.size, checksum=spec.checksum, progress=progress, label=label).path
    except DownloadError as e:
        lines = "\n".join(f"  - {f}" for f in [*failures, *e.failures])
        raise WeightsUnavailableError(
            f"{label} is unavailable:\n{lines}\nPut {spec.file} in a folder (or <folder>/{spec.folder}/) and pass "
            f"--mirror DIR (params: data.mirrors; env: SRPIPE_MIRRORS), or import a copy with `srpipe import`."
        ) from None


def import_released(
    name: str, out_dir: Path, cache_dir: Path | None = None, mirrors: Sequence[str] = (), progress: bool = True
) -> Path:
    """`out_dir/<name>.pt` for catalog entry `name`, converted once and reused while its source sha256 matches.

    Downloads go to `cache_dir`, by default `out_dir/downloads`: one folder holds a user's released weights.
    """
    spec = get_released(name)
    out = Path(out_dir) / f"{name}.pt"
    if out.is_file() and spec.checksum:
        try:
            card, _ = read_card(out)
            if card.source_sha256 == spec.checksum.removeprefix("sha256:") and card.config == spec.config:
                return out
        except ValueError:
            pass  # unreadable: convert again
    src = obtain(spec, cache_dir or Path(out_dir) / "downloads", mirrors, progress)
    import_weights(
        src,
        spec.model,
        spec.scale,
        out,
        spec.format,
        spec.config,
        source=spec.source,
        training_data=spec.training_data,
        variant=spec.variant,
    )
    return out

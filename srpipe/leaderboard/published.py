"""The papers' PSNR/SSIM as packaged data (`published.csv`), transcribed from the standard comparison tables.

Figures are Y-channel PSNR (dB) / SSIM with crop = scale on the MATLAB bicubic ("BI") degradation, as printed in the
EDSR (CVPRW'17 Table 6), RDN (CVPR'18) and RCAN (ECCV'18 Table 3) tables that gather the earlier networks. Each row
names its source and a status:

- ``published``: the paper's own table, or a later paper's table that reprints it;
- ``secondary``: copied from a third-party table;
- ``UNCONFIRMED``: not found in a primary source; shown with that flag wherever srpipe uses it;
- ``not published``: no figure; an empty dataset means "none for any dataset at this scale".

Rows cover x2/x3/x4; x8 and the self-ensemble "+" variants (EDSR+, RCAN+) are not in the file.
"""

from __future__ import annotations

import csv
import io
from functools import lru_cache
from importlib import resources
from typing import NamedTuple

STATUSES = ("published", "secondary", "UNCONFIRMED", "not published")
COLUMNS = ("model", "scale", "dataset", "psnr", "ssim", "source", "status")


class Figure(NamedTuple):
    """One published figure; psnr/ssim are None when the paper gives none."""

    psnr: float | None
    ssim: float | None
    source: str
    status: str


def _number(text: str) -> float | None:
    return float(text) if text.strip() else None


def parse(text: str) -> dict[tuple[str, int, str], Figure]:
    """(model, scale, dataset) → Figure from CSV text; a bad row raises naming its line."""
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise ValueError(f"published.csv: columns must be {COLUMNS}, got {reader.fieldnames}")
    table: dict[tuple[str, int, str], Figure] = {}
    for row in reader:
        where = f"published.csv line {reader.line_num}"
        try:
            key = (row["model"], int(row["scale"]), row["dataset"])
            fig = Figure(_number(row["psnr"]), _number(row["ssim"]), row["source"], row["status"])
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: {e}") from None
        if fig.status not in STATUSES:
            raise ValueError(f"{where}: status {fig.status!r} is not one of {STATUSES}")
        if (fig.psnr is None) != (fig.status == "not published"):  # a number needs a status; "not published" none
            raise ValueError(f"{where}: status {fig.status!r} with psnr {row['psnr']!r}")
        if key in table:
            raise ValueError(f"{where}: duplicate row for {key}")
        table[key] = fig
    return table


@lru_cache(maxsize=1)
def load_published() -> dict[tuple[str, int, str], Figure]:
    """The packaged table, read once (importlib.resources, so it works from a wheel or a zip too)."""
    return parse(resources.files("srpipe.leaderboard").joinpath("published.csv").read_text(encoding="utf-8"))


def lookup(model: str, scale: int, dataset: str) -> Figure | None:
    """The figure for `model` at `scale` on `dataset`, a model-wide "not published" row, or None (never collected)."""
    table = load_published()
    return table.get((model, scale, dataset)) or table.get((model, scale, ""))

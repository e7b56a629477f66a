"""The papers' PSNR/SSIM as packaged data (`published.csv`), transcribed from the standard comparison tables.

Figures are Y-channel PSNR (dB) / SSIM with crop = scale on the MATLAB bicubic ("BI") degradation, as printed in the
EDSR (CVPRW'17 Table 6), RDN (CVPR'18) and RCAN (ECCV'18 Table 3) tables that gather the earlier networks. Each row
names the training data of the model it measures (`training`: empty for the paper's headline model, else e.g.
``T91`` for a 91-image model the paper also reports, so a model srpipe trained on T91 is compared with its like),
its source and a status:

- ``published``: the paper's own table, or a later paper's table that reprints it;
- ``secondary``: copied from a third-party table;
- ``UNCONFIRMED``: not found in a primary source; shown with that flag wherever srpipe uses it;
- ``not published``: no figure; an empty dataset means "none for any dataset at this scale".

Rows cover x2/x3/x4; x8 and the self-ensemble "+" variants (EDSR+, RCAN+) are not in the file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from typing import NamedTuple

STATUSES = ("published", "secondary", "UNCONFIRMED", "not published")
COLUMNS = ("model", "scale", "dataset", "training", "psnr", "ssim", "source", "status")
Key = tuple[str, int, str, str]  # (model, scale, dataset, training)


class Figure(NamedTuple):
    """One published figure; psnr/ssim are None when the paper gives none."""

    psnr: float | None
    ssim: float | None
    source: str
    status: str
    training: str = ""  # the training data of the paper's model this figure measures; "" = its headline model


def _number(text: str) -> float | None:
    return float(text) if text.strip() else None


def parse(text: str) -> dict[Key, Figure]:
    """(model, scale, dataset, training) → Figure from CSV text; a bad row raises naming its line."""
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise ValueError(f"published.csv: columns must be {COLUMNS}, got {reader.fieldnames}")
    table: dict[Key, Figure] = {}
    for row in reader:
        where = f"published.csv line {reader.line_num}"
        try:
            key = (row["model"], int(row["scale"]), row["dataset"], row["training"])
            fig = Figure(_number(row["psnr"]), _number(row["ssim"]), row["source"], row["status"], row["training"])
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
def load_published() -> dict[Key, Figure]:
    """The packaged table, read once (importlib.resources, so it works from a wheel or a zip too)."""
    return parse(resources.files("srpipe.leaderboard").joinpath("published.csv").read_text(encoding="utf-8"))


def training_key(datasets: Iterable[str]) -> str:
    """The `training` spelling of a set of training datasets: sorted names joined by '+' (e.g. "DIV2K+Flickr2K")."""
    return "+".join(sorted(set(datasets)))


def lookup(model: str, scale: int, dataset: str, training: Iterable[str] = ()) -> Figure | None:
    """The figure for `model` at `scale` on `dataset`, a model-wide "not published" row, or None (never collected).

    `training` (the datasets a model learned from) picks the paper's figure for a model trained on that data where
    the paper gives one (SRCNN, FSRCNN, ESPCN on T91); otherwise the headline figure stands.
    """
    table = load_published()
    keys = [(model, scale, dataset, training_key(training))] if training else []
    keys += [(model, scale, dataset, ""), (model, scale, "", "")]
    return next((table[k] for k in keys if k in table), None)

"""The human and DVC views of the long table: LEADERBOARD.md and leaderboard.json.

Both are pure functions of the rows (no timestamps, no paths), so identical evaluations give byte-identical files and
`dvc` sees no change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from srpipe.leaderboard.table import row_label
from srpipe.models import get_card

HEADER = """\
# Leaderboard

PSNR (dB) and SSIM are measured on the **Y channel** (ITU-R BT.601 luma) of the SR image rounded to uint8, with
`scale` pixels cropped from every border; the LR inputs are the modcropped HR images shrunk by MATLAB-compatible
bicubic `imresize` (the "BI" degradation). That is the convention of the EDSR, RDN and RCAN tables, so measured and
published numbers are comparable; the training behind them may not be.

**Training budget.** {budget}

*Published* is the paper's PSNR / SSIM and *Status* its provenance: `published` (a paper's table), `secondary` (a
third-party table), `UNCONFIRMED` (not found in a primary source: do not rely on it), `not published`.
*Gap* = measured − published; *vs bicubic* = measured − bicubic measured on the same set and scale. FLOPs are for one
{flops_input} input; latency is the median time per image on {devices}. Rows are sorted by PSNR; the sources of the
published figures follow each table.

Every number here is in `leaderboard.parquet`, one row per model × scale × dataset; its columns are documented in
`docs/leaderboard-schema.md` (stable: changes only add columns).
"""

COLUMNS = ("#", "Model", "PSNR", "SSIM", "vs bicubic", "Published", "Status", "Gap", "Params", "FLOPs", "Latency ms")
COLUMNS += ("Notes",)
ALIGN = "|---:|:---|" + "---:|" * 4 + ":---|" + "---:|" * 4 + ":---|"  # names and text left, numbers right


def num(x: float | None, fmt: str) -> str:
    """`x` formatted, or an em dash for a missing value."""
    return "—" if x is None else format(x, fmt)


def si(n: float | None) -> str:
    """A count with an SI suffix: 1.52M, 12.30G."""
    if n is None:
        return "—"
    for unit, div in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:g}"


def _paper_iterations(model: str) -> int | None:
    try:
        return get_card(model).recipe.iterations or None
    except KeyError:
        return None


def _published_self_ensemble(model: str) -> bool:
    try:
        return get_card(model).published_self_ensemble
    except KeyError:
        return False


def notes(r: Mapping[str, Any]) -> str:
    """What a reader must know to judge a row: baseline, config, training budget, colour, ensemble, training note."""
    out = ["baseline"] if r["model"] == "bicubic" else []
    if r["config"] not in (None, "paper"):
        out.append(f"config {r['config']}")
    if r["train_iterations"] is not None:
        paper = _paper_iterations(r["model"])
        # "reference", not "paper": several papers state no total; the model card says where each figure comes from.
        out.append(f"{r['train_iterations']:,} it." + (f" (reference {paper:,})" if paper else ""))
    if r.get("source") == "released":
        out.append(f"released weights ({r.get('training_data') or 'authors’ data'})")
    elif r["train_color"] == "y":
        out.append("trained on Y")
    if r.get("training_data") and r.get("source") != "released":
        out.append(f"trained on {r['training_data']}")
    if r.get("published_training"):
        out.append(f"published figure: the paper's {r['published_training']} model")
    if r.get("train_recipe") and "; paper:" in r["train_recipe"]:
        out.append(f"recipe {r['train_recipe']}")
    if r.get("protocol") not in (None, "rgb"):
        out.append(f"protocol {r['protocol']} (the paper's test code)")
    published_ensemble = _published_self_ensemble(r["model"])
    if r["self_ensemble"]:
        out.append(
            "x8 self-ensemble, as the published figure"
            if published_ensemble
            else "x8 self-ensemble; the published figure is without"
        )
    elif published_ensemble:
        out.append("no self-ensemble; the published figure uses the x8 self-ensemble")
    if r["train_note"] and r.get("source") != "released":  # a released card's note repeats its provenance
        out.append(r["train_note"])
    return "; ".join(out)


def cells(rank: int, r: Mapping[str, Any]) -> list[str]:
    """One Markdown table row; the tests format the JSON numbers through this too."""
    pub = "—" if r["published_psnr"] is None else f"{r['published_psnr']:.2f} / {num(r['published_ssim'], '.4f')}"
    gain = "baseline" if r["model"] == "bicubic" else num(r["gain_psnr_over_bicubic"], "+.2f")
    return [
        *[str(rank), row_label(r), f"{r['psnr']:.2f}", f"{r['ssim']:.4f}"],
        *[gain, pub],
        *[r["published_status"] or "—", num(r["gap_psnr"], "+.2f"), si(r["params"]), si(r["flops"])],
        *[num(r["latency_ms"], ".1f"), notes(r)],
    ]


def _budget(rows: Sequence[Mapping[str, Any]]) -> str:
    trained = {(r["model"], r["scale"]): r for r in rows if r["train_iterations"] is not None}
    if not trained:
        return "No row comes from a network trained by srpipe."
    short = sum(
        r["config"] != "paper" or r["train_iterations"] < (_paper_iterations(r["model"]) or 0) for r in trained.values()
    )
    return (
        f"{len(trained)} model × scale pairs were trained by srpipe, {short} of them with a smaller config or fewer "
        "iterations than the paper (see Notes). For those the gap to the paper measures the budget, not the method: "
        "such a run checks the pipeline, it does not reproduce the paper."
    )


def markdown(rows: Sequence[Mapping[str, Any]], skipped: Mapping[str, str] | None = None) -> str:
    """LEADERBOARD.md: the header, then one table per scale and dataset in the rows' order (best PSNR first), then
    the released weights the pipeline asked for and could not evaluate, each with its reason."""
    inputs = " / ".join(sorted({r["flops_input"] for r in rows if r["flops_input"]})) or "fixed-size"
    devices = "; ".join(sorted({r["device"] for r in rows if r["device"]})) or "an unrecorded device"
    out = [HEADER.format(budget=_budget(rows), flops_input=inputs, devices=devices)]
    for scale, dataset in dict.fromkeys((r["scale"], r["dataset"]) for r in rows):
        section = [r for r in rows if r["scale"] == scale and r["dataset"] == dataset]
        out += [f"## x{scale} on {dataset}", "", "| " + " | ".join(COLUMNS) + " |", ALIGN]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in cells(i, r)) + " |" for i, r in enumerate(section, 1)]
        sources = {row_label(r): r["published_source"] for r in section if r["published_psnr"] is not None}
        if sources:
            out += ["", "Published figures: " + "; ".join(f"{m}: {s}" for m, s in sources.items()) + "."]
        out.append("")
    if skipped:
        out += ["## Released weights not evaluated", ""]
        out += [f"- `{name}`: " + " ".join(why.split()) for name, why in skipped.items()]
    return "\n".join(out).rstrip() + "\n"


def metrics(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """leaderboard.json: x<scale> → dataset → model → {psnr, ssim, gap_psnr}, the nesting `dvc metrics diff` shows."""
    out: dict[str, Any] = {}
    for r in rows:
        entry = {"psnr": r["psnr"], "ssim": r["ssim"], "gap_psnr": r["gap_psnr"]}
        name = row_label(r)
        out.setdefault(f"x{r['scale']}", {}).setdefault(r["dataset"], {})[name] = entry
    return out

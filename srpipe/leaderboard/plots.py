"""Leaderboard figures: PSNR against cost with its Pareto front, and a zoomed crop of one image for every method.

matplotlib is imported here, and the stage imports this module only when it draws. Figures are `Figure` objects on an
Agg canvas, never pyplot: no global figure state, so two leaderboards drawing in threads of one process cannot touch
each other's figures, and no display is needed. Sizes come from figsize × dpi alone (no tight bounding box), so a
PNG's pixel size is known in advance: 1600 × 800 per scale for the cost figure, 1600 × 800 for a visual one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from srpipe.data.images import load_image
from srpipe.degrade import bicubic_lr, bicubic_up, modcrop
from srpipe.fsio import atomic_path
from srpipe.leaderboard.table import row_label
from srpipe.metrics import score

log = logging.getLogger(__name__)

DPI = 100
ROW_INCHES = (16, 8)  # 1600 × 800 px at DPI: one row of two cost panels, or the whole visual figure


@dataclass(frozen=True)
class Source:
    """One panel of the visual figure: a saved SR image (None = bicubic, recomputed from HR) and its PSNR."""

    label: str
    path: Path | None
    psnr: float | None


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (cost, psnr) points that no other point beats (as cheap or cheaper and at least as good)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:  # by rising cost, a point is on the front iff it beats every cheaper one
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)  # no bbox_inches="tight": it would change the pixel size


def _cost_panel(ax: Axes, rows: Sequence[Mapping[str, Any]], cost: str, baseline: float | None) -> None:
    if baseline is not None:
        ax.axhline(baseline, ls="--", lw=1, color="grey", label=f"bicubic {baseline:.2f} dB")
    pts = [(r[cost], r["psnr"], row_label(r)) for r in rows if (r[cost] or 0) > 0]
    if not pts:
        ax.text(0.5, 0.5, f"no {cost} figures", transform=ax.transAxes, ha="center", va="center")
    else:
        ax.set_xscale("log")
        ax.margins(x=0.15)  # room for the labels of the extreme points
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=30, color="tab:blue", zorder=3)
        for x, y, name in pts:
            ax.annotate(name, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=8)
        front = [pts[i] for i in pareto_front([(x, y) for x, y, _ in pts])]
        fx, fy = [p[0] for p in front], [p[1] for p in front]
        ax.step(fx, fy, where="post", color="tab:red", lw=1.2, label="Pareto front")
        ax.scatter(fx, fy, s=140, facecolors="none", edgecolors="tab:red", zorder=4)
    ax.set_ylabel("PSNR (dB, Y channel)")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)


def psnr_vs_cost(rows: Sequence[Mapping[str, Any]], dataset: str, path: Path) -> bool:
    """One row of panels per scale: PSNR on `dataset` against FLOPs (left) and latency (right), log x, front in red.

    Bicubic is the dashed baseline (0 FLOPs has no place on a log axis). Returns False, drawing nothing, when no model
    besides bicubic was evaluated on `dataset`.
    """
    rows = [r for r in rows if r["dataset"] == dataset]
    scales = sorted({r["scale"] for r in rows if r["model"] != "bicubic"})
    if not scales:
        return False
    inputs = " / ".join(sorted({r["flops_input"] for r in rows if r["flops_input"]})) or "a fixed input"
    fig = Figure(figsize=(ROW_INCHES[0], ROW_INCHES[1] * len(scales)), dpi=DPI, layout="constrained")
    for axes, scale in zip(fig.subplots(len(scales), 2, squeeze=False), scales):
        at = [r for r in rows if r["scale"] == scale]
        models = [r for r in at if r["model"] != "bicubic"]
        baseline = next((r["psnr"] for r in at if r["model"] == "bicubic" and not r["self_ensemble"]), None)
        for ax, cost, name in zip(axes, ("flops", "latency_ms"), (f"FLOPs for {inputs}", "latency (ms / image)")):
            _cost_panel(ax, models, cost, baseline)
            ax.set_xlabel(name)
            ax.set_title(f"x{scale} on {dataset}: PSNR against {name.split()[0]}")
    _save(fig, path)
    return True


def _worst_window(hr: np.ndarray, other: np.ndarray, side: int) -> tuple[int, int]:
    """(top, left) of the side × side window where `other` is furthest from `hr`: where SR has the most to fix."""
    err = np.abs(hr.astype(np.float64) - other).sum(axis=2)
    integral = np.pad(err.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    step = max(1, side // 4)
    best, where = -1.0, (0, 0)
    for top in range(0, hr.shape[0] - side + 1, step):
        for left in range(0, hr.shape[1] - side + 1, step):
            b, r = top + side, left + side
            total = integral[b, r] - integral[top, r] - integral[b, left] + integral[top, left]
            if total > best:
                best, where = total, (top, left)
    return where


def visual(hr_path: Path, scale: int, sources: Sequence[Source], crop: int, heading: str, path: Path) -> None:
    """HR, then `sources` (bicubic first), zoomed on the same `crop`-px window, each titled with its PSNR.

    The window is where bicubic is furthest from HR, i.e. where the models have the most to show.
    """
    loaded = load_image(hr_path)
    hr = modcrop(loaded.pixels, scale)
    panels = [("HR", hr)]
    for src in sources:
        if src.path is None:  # bicubic not saved: it is interpolation, not a model run, so recompute it exactly
            sr = bicubic_up(bicubic_lr(loaded.pixels, scale)[1], scale)
            psnr = src.psnr if src.psnr is not None else score(sr, hr, scale, loaded.gray)["psnr"]
        else:
            sr, psnr = load_image(src.path).pixels, src.psnr
        if sr.shape != hr.shape:
            raise ValueError(f"{src.path}: {sr.shape[1]}×{sr.shape[0]} px, HR {hr_path} is {hr.shape[1]}×{hr.shape[0]}")
        panels.append((src.label if psnr is None else f"{src.label}  {psnr:.2f} dB", sr))
    side = min(crop, *hr.shape[:2])
    top, left = _worst_window(hr, panels[1][1], side) if len(panels) > 1 else (0, 0)
    cols = max(1, math.ceil(len(panels) / 2)) if len(panels) > 4 else len(panels)
    rows = math.ceil(len(panels) / cols)
    # One image of all the crops (a band above each for its title), drawn in one axes: 17 axes under a constrained
    # layout cost 1.3 s per figure in tick and bounding-box bookkeeping for panels that show no axis at all.
    band, gap = max(1, round(side * 0.22)), max(1, round(side * 0.06))
    cell_h, cell_w = band + side + gap, side + gap
    mosaic = np.full((rows * cell_h, cols * cell_w, 3), 255, np.uint8)
    fig = Figure(figsize=ROW_INCHES, dpi=DPI)
    fig.suptitle(f"{heading}: {side}×{side} px at ({left}, {top})")
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.90))
    ax.set_axis_off()
    for i, (title, pixels) in enumerate(panels):
        y, x = (i // cols) * cell_h + band, (i % cols) * cell_w
        mosaic[y : y + side, x : x + side] = pixels[top : top + side, left : left + side]
        ax.text(x + side / 2, y - band / 2, title, ha="center", va="center", fontsize=9)
    ax.imshow(mosaic, interpolation="nearest")
    _save(fig, path)


def _find_hr(raw_dir: Path, dataset: str, stem: str) -> Path | None:
    """HR image `stem` in the folders `srpipe evaluate` reads: <raw>/<dataset>/test, then <raw>/<dataset>."""
    for folder in (raw_dir / dataset / "test", raw_dir / dataset):
        hits = sorted(p for p in folder.glob(f"{stem}.*") if p.is_file()) if folder.is_dir() else []
        if hits:
            return hits[0]
    return None


def visual_from_evaluations(
    evals: Sequence[Mapping[str, Any]], dataset: str, images: Path, raw_dir: Path | None, crop: int, out_dir: Path
) -> Path | None:
    """visual_<dataset>.png from the SR images `srpipe evaluate --save-images DIR` wrote as
    DIR/<dataset>/<stem>_x<scale>_<model>.png, with DIR = `images` or `images`/<model>_x<scale> (dvc.yaml's layout).

    It uses the largest scale at which every evaluated model saved its images (differences show best there) and the
    image on which the methods' PSNRs spread most. No model is run: without saved images the figure is skipped.
    """

    def saved(model: str, scale: int, stem: str) -> Path | None:
        name = f"{stem}_x{scale}_{model}.png"
        candidates = (images / dataset / name, images / f"{model}_x{scale}" / dataset / name)
        return next((p for p in candidates if p.is_file()), None)

    # The x8 self-ensemble ("+") and the authors' released weights would read the file names of srpipe's own model:
    # (model, scale) names one set of saved images.
    evals = [ev for ev in evals if dataset in ev["datasets"] and not ev.get("self_ensemble") and not ev.get("released")]
    psnr = {
        (ev["model"], ev["scale"]): {im["name"]: im["psnr"] for im in ev["datasets"][dataset].get("images", [])}
        for ev in evals
    }
    for scale in sorted({ev["scale"] for ev in evals}, reverse=True):
        at = [ev for ev in evals if ev["scale"] == scale]
        models = [ev for ev in at if ev["model"] != "bicubic"]
        stems = set.intersection(*(set(psnr[ev["model"], scale]) for ev in models)) if models else set()
        stems = {s for s in stems if all(saved(ev["model"], scale, s) for ev in models)}
        if stems:
            break
    else:
        log.info("leaderboard: no saved SR images for %s under %s: visual_%s.png skipped", dataset, images, dataset)
        return None
    spread = {s: [p[s] for p in (psnr[ev["model"], scale] for ev in at) if s in p] for s in stems}
    stem = max(sorted(stems), key=lambda s: max(spread[s]) - min(spread[s]))
    hr = _find_hr(raw_dir, dataset, stem) if raw_dir is not None else None
    if hr is None:
        log.info("leaderboard: HR image %s of %s not under %s: visual_%s.png skipped", stem, dataset, raw_dir, dataset)
        return None
    sources = [Source("bicubic", saved("bicubic", scale, stem), psnr.get(("bicubic", scale), {}).get(stem))]
    models.sort(key=lambda ev: -psnr[ev["model"], scale][stem])
    sources += [Source(ev["model"], saved(ev["model"], scale, stem), psnr[ev["model"], scale][stem]) for ev in models]
    path = out_dir / f"visual_{dataset}.png"
    visual(hr, scale, sources, crop, f"{dataset} x{scale}, {stem}", path)
    return path

"""Stage `evaluate`: PSNR/SSIM (paper convention) of one model at one scale on benchmark folders, plus its cost."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from srpipe import cost
from srpipe.config import EvaluateParams
from srpipe.context import DEFAULT, Context
from srpipe.data.images import IMAGE_SUFFIXES, list_images, load_image, save_png
from srpipe.degrade import bicubic_lr
from srpipe.fsio import write_json
from srpipe.inference import bytes_per_pixel, plan_tile, sr_function, tile_budget, tiled
from srpipe.memory import memory_cap
from srpipe.models import create_model, get_card
from srpipe.protocols import SCORE_BYTES_PER_PX, sr_and_score
from srpipe.provenance import dvc_md5, file_digest, git_commit
from srpipe.runtime import device_name, for_inference, image_channels, pick_device, precision_name
from srpipe.tracking import start_run, telemetry_off
from srpipe.weights import WeightsCard, load_model

log = logging.getLogger(__name__)


def resolve_datasets(raw_dir: Path, names: list[str]) -> tuple[dict[str, Path], list[str]]:
    """ "Set5" or "Set5/test" → the HR folder under `raw_dir`; (found, skipped) with skipped ones logged."""
    found, skipped = {}, []
    for name in names:
        base = name.split("/")[0]
        candidates = [raw_dir / name] if "/" in name else [raw_dir / name / "test", raw_dir / name]
        folder = next((c for c in candidates if c.is_dir() and any(list_images(c))), None)
        if folder is None:
            log.warning("evaluate: %s has no images under %s (not downloaded or unavailable): skipped", name, raw_dir)
            skipped.append(name)
        else:
            found[base] = folder
    return found, skipped


def evaluate(
    model: str,
    scale: int,
    datasets: Mapping[str, Path],
    params: EvaluateParams,
    weights: Path | None = None,
    out_json: Path | None = None,
    save_images: Path | None = None,
    ctx: Context = DEFAULT,
) -> dict[str, Any]:
    """Score `model` (weights from `weights`; none for bicubic) on each HR folder in `datasets`, on `ctx.device`.

    Per image: PSNR and SSIM on Y with crop = scale, and RGB PSNR; per dataset: their means. Also the cost: params,
    FLOPs for a `params.flops_input`² LR input, median latency per image and peak memory on the device.
    `params.protocol` (srpipe.protocols) is how LR inputs are made and scores computed: srpipe's `rgb`, or the
    Y-channel papers' own test code (`y-matlab`, `rgb-float`) for comparing with their tables.
    """
    t0 = time.perf_counter()
    protocol = params.protocol
    telemetry_off()
    listed = {name: list_images(folder) for name, folder in datasets.items()}
    if empty := [str(datasets[name]) for name, files in listed.items() if not files]:  # before any work: no NaN
        raise ValueError(f"evaluate: no images ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(empty)}")
    if model in params.self_ensemble_models and not params.self_ensemble:  # as this model's published figures were
        params = dataclasses.replace(params, self_ensemble=True)
    dev = pick_device(ctx.device)
    card: WeightsCard | None = None
    if weights is not None:
        net, card = load_model(weights, model=model, scale=scale)
    elif not get_card(model).learned:
        net = create_model(model, scale)
    else:
        raise ValueError(f"{model} needs --weights (a file written by `srpipe train`)")
    # Bicubic has no colour of its own: it interpolates whatever the protocol hands it (Y alone under y-matlab).
    color = card.color if card else ("y" if protocol == "y-matlab" else "rgb")
    input_space = get_card(model).input_space
    channels = image_channels(color)
    net, amp = for_inference(net, dev, params.precision, channels)
    side = params.flops_input * (scale if input_space == "bicubic" else 1)
    result: dict[str, Any] = {"model": model, "scale": scale, "config": card.config if card else "paper"}
    result |= cost.summary(net, channels, side, dev) | {"flops_input": f"{params.flops_input}x{params.flops_input} LR"}
    result |= {"device": device_name(dev), "precision": precision_name(amp), "self_ensemble": params.self_ensemble}
    # Whether the paper's own figures used the x8 self-ensemble (RED30): the leaderboard compares like with like.
    result["published_self_ensemble"] = get_card(model).published_self_ensemble
    result |= {
        "weights": str(weights) if weights else None,
        "weights_sha256": file_digest(weights) if weights else None,
    }
    result |= {"train": _train_info(card), "git_commit": git_commit(), "protocol": protocol, "datasets": {}}
    cap = None if params.tile else memory_cap(params.max_memory)
    per_px: dict[str, float] = {}  # bytes per LR pixel of one tile's work, per colour mode (measured once)

    def run(lr: torch.Tensor, color: str = color) -> torch.Tensor:
        fn = sr_function(net, scale, input_space, color, params.self_ensemble, amp)
        tile = params.tile
        if cap is not None:  # the tile that fits beside the full-size result and its scoring; 0 (whole) if it all fits
            if color not in per_px:
                per_px[color] = bytes_per_pixel(fn, lr.shape[1], lr.dtype, lr.device)
            h, w = lr.shape[-2:]
            budget = tile_budget(cap, SCORE_BYTES_PER_PX * lr.shape[0] * h * w * scale**2, dev)
            tile = plan_tile(per_px[color], budget, h, w, params.tile_overlap)
        return tiled(fn, tile, params.tile_overlap, scale)(lr)

    latencies = []
    cost.reset_peak_memory(dev)
    for name, files in listed.items():
        rows = []
        for path in tqdm(files, desc=f"evaluate {model} x{scale} {name}", disable=not ctx.progress):
            img = load_image(path)
            try:
                sr, scores = sr_and_score(protocol, img.pixels, img.gray, scale, run, color, dev)
            except ValueError as e:  # e.g. too small for the scale: say which image
                raise ValueError(f"evaluate: {path}: {e}") from None
            if not latencies:  # one image, timed after warm-up: the latency column
                _, lr = bicubic_lr(img.pixels, scale)
                lr_t = torch.from_numpy(lr).permute(2, 0, 1)[None].to(dev)
                latencies.append(cost.latency(lambda t=lr_t: run(t), dev, params.latency_repeats))
            rows.append({"name": path.stem, **scores})
            if save_images is not None:
                save_png(Path(save_images) / name / f"{path.stem}_x{scale}_{model}.png", sr)
        result["datasets"][name] = {
            "psnr": float(np.mean([r["psnr"] for r in rows])),
            "ssim": float(np.mean([r["ssim"] for r in rows])),
            # None under protocol y-matlab, which never forms an RGB image
            "psnr_rgb": None if None in (rgb := [r["psnr_rgb"] for r in rows]) else float(np.mean(rgb)),
            "images": rows,
        }
        log.info(
            "%s x%d on %s: PSNR %.3f dB, SSIM %.4f (%d images)",
            model,
            scale,
            name,
            result["datasets"][name]["psnr"],
            result["datasets"][name]["ssim"],
            len(rows),
        )
    result["latency_ms"] = latencies[0] if latencies else None
    result["peak_memory_mb"] = cost.peak_memory_mb(dev)
    if result["datasets"]:  # the CLI contract: top-level means and images of the first (primary) dataset
        first = next(iter(result["datasets"].values()))
        result |= {"psnr": first["psnr"], "ssim": first["ssim"], "images": first["images"]}
    # DVC's md5 of each input it versions (weights, dataset folders): the run points at exact data versions.
    data = {f"dvc.{name}_md5": dvc_md5(folder) or dvc_md5(Path(folder).parent) for name, folder in datasets.items()}
    data["dvc.weights_md5"] = dvc_md5(weights) if weights else ""
    result["seconds"] = time.perf_counter() - t0  # the evaluation's own work: the pipeline-overhead bench subtracts it
    result["mlflow_run_id"] = _track(result, ctx, data)
    if out_json is not None:
        write_json(out_json, result)
    return result


def _train_info(card: WeightsCard | None) -> dict[str, Any]:
    if card is None:
        return {}
    return {
        "iterations": card.train.get("steps"),
        "seconds": card.train.get("train_seconds"),
        "mlflow_run_id": card.mlflow_run_id,
        "note": card.note,
        "color": card.color,
        "origin": card.origin,
        "source": card.source,
        "source_sha256": card.source_sha256,
        "training_data": card.training_data,
        "variant": card.variant,
        "data": card.train.get("data"),
        "rescale": card.train.get("rescale"),  # the downscaled copies it also learned from (FSRCNN)
        "recipe": card.train.get("recipe"),
    }


def _track(result: dict[str, Any], ctx: Context, data: dict[str, str]) -> str:
    tags = {
        "srpipe.stage": "evaluate",
        "srpipe.model": result["model"],
        "srpipe.scale": result["scale"],
        "git_commit": result["git_commit"],
        **data,
    }
    name = f"evaluate {result['model']} x{result['scale']}"
    tracker = start_run(ctx.tracking_uri, ctx.experiment, name, tags=tags, parent=ctx.parent_run_id)
    logged = ("model", "scale", "config", "self_ensemble", "weights", "device", "precision")
    tracker.params({k: result[k] for k in logged})
    metrics = {k: result[k] for k in ("params", "flops", "latency_ms", "peak_memory_mb") if result.get(k) is not None}
    for name, d in result["datasets"].items():
        metrics |= {f"{name}_psnr": d["psnr"], f"{name}_ssim": d["ssim"]}
        if d["psnr_rgb"] is not None:
            metrics[f"{name}_psnr_rgb"] = d["psnr_rgb"]
    tracker.metrics(metrics, step=0)
    tracker.end()
    return tracker.run_id


def evaluate_released(
    name: str,
    datasets: Mapping[str, Path],
    params: EvaluateParams,
    weights_dir: Path,
    mirrors: Sequence[str] = (),
    out_json: Path | None = None,
    save_images: Path | None = None,
    ctx: Context = DEFAULT,
) -> dict[str, Any]:
    """Import the catalog's released weights `name` and score them under the protocol of the authors' own test code.

    The row then measures srpipe's architecture and evaluator against the paper's table. When no cache, mirror or URL
    provides the file, nothing fails: the JSON records `skipped` with the reason (the leaderboard lists it), so an
    offline machine without the team's copies still runs the whole pipeline.
    """
    from srpipe.released import get_released
    from srpipe.stages.import_weights import WeightsUnavailableError, import_released

    spec = get_released(name)
    head = {"released": name, "model": spec.model, "scale": spec.scale}
    try:
        weights = import_released(name, weights_dir, mirrors=mirrors, progress=ctx.progress)
    except WeightsUnavailableError as e:
        log.warning("evaluate: released %s skipped: %s", name, e)
        result = head | {"skipped": str(e)}
    else:
        theirs = dataclasses.replace(params, protocol=spec.protocol)
        result = head | evaluate(spec.model, spec.scale, datasets, theirs, weights, save_images=save_images, ctx=ctx)
    if out_json is not None:
        write_json(out_json, result)
    return result

"""Stage `train`: one network at one scale, from the patch store to a weights file (and an MLflow run)."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srpipe.config import TrainParams
from srpipe.context import DEFAULT, Context
from srpipe.data.images import save_png
from srpipe.data.store import Store
from srpipe.fsio import sweep
from srpipe.models import count_params, create_model
from srpipe.plan import checkpoint_for
from srpipe.provenance import data_version, dvc_md5, git_commit
from srpipe.runtime import amp_dtype, image_channels, pick_device
from srpipe.tracking import start_run, telemetry_off
from srpipe.train.loop import (
    CheckpointError,
    TrainState,
    build_state,
    fit,
    load_checkpoint,
    owns_checkpoint,
    read_checkpoint,
    validate,
)
from srpipe.train.losses import Criterion
from srpipe.train.spec import RunSpec, resolve
from srpipe.weights import WeightsCard, load_model, read_card, save_weights

log = logging.getLogger(__name__)

VGG19_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's file name in the torch hub cache


def find_vgg19(explicit: str | None) -> Path | None:
    """The VGG19 weights for SRGAN's VGG54 loss: the file params name, else torchvision's cached download."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"train.vgg_weights: {path} does not exist")
        return path
    cached = Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE
    return cached if cached.exists() else None


def _init_distributed(device: torch.device) -> bool:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or torch.distributed.is_initialized():
        return False
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return True


def _rescaled_copies(store: Store, spec: RunSpec) -> list[float]:
    """The factors of the recipe's downscaled copies the store holds; a missing one is warned about, not fatal (a
    CPU profile may leave the augmentation out), and the weights card records what was really used."""
    wanted, held = list(spec.recipe.rescale), store.copies(spec.recipe.rescale)
    if missing := [f for f in wanted if f not in held]:
        log.warning(
            "%s: the paper also trains on copies downscaled by %s; the store has none for %s (add them with "
            "prepare.rescale)",
            spec.model,
            ", ".join(f"{f:g}" for f in wanted),
            ", ".join(f"{f:g}" for f in missing),
        )
    return held


def train(
    model: str,
    scale: int,
    store_dir: Path,
    out_path: Path,
    params: TrainParams,
    ctx: Context = DEFAULT,
    init_weights: Path | None = None,
    checkpoint: Path | None = None,
    resume: bool | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Train `model` at `scale` on `store_dir/train`, validating on `store_dir/valid`; write `out_path`.

    Runs on `ctx.device` (the front doors pass `train.device`), tracked where `ctx` says. `resume`: None resumes a
    matching checkpoint when one exists, True requires one, False starts afresh. `overrides` (ModelParams fields:
    config, iterations, color, recipe={lr, batch_size, ...}) win over params.yaml.
    """
    telemetry_off()
    spec: RunSpec = resolve(model, scale, params, **overrides)
    opts = params
    device = pick_device(ctx.device)
    owns_group = _init_distributed(device)
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    try:
        if opts.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        elif device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        torch.manual_seed(spec.seed)
        net = create_model(model, scale, spec.config, channels=net_channels(spec), **spec.arch)
        if count_params(net) == 0:
            raise ValueError(f"{model} has no parameters to train")
        init: dict[str, Any] | None = None
        if init_weights is not None:
            init = initialise(net, Path(init_weights), model, scale)
        elif spec.init_from:
            log.warning(
                "%s: the paper initialises from a trained %s; none given, training from scratch", model, spec.init_from
            )
        elif spec.recipe.init_scale and scale != spec.recipe.init_scale:
            log.warning(
                "%s x%d: the paper starts from its trained x%d model (pipeline.cross_scale); none given, training from "
                "scratch",
                model,
                scale,
                spec.recipe.init_scale,
            )
        net.to(device)
        amp = amp_dtype(device, opts.precision)
        criterion = Criterion(spec.recipe, net_channels(spec), find_vgg19(opts.vgg_weights)).to(device)
        st = build_state(spec, net, criterion, device, fp16=amp == torch.float16)
        ckpt = claim_checkpoint(checkpoint, Path(out_path), st, spec, resume)
        sweep(Path(store_dir))  # a `prepare` killed mid-swap hid the store: bring it back
        train_store, valid = Store(Path(store_dir) / "train"), Store(Path(store_dir) / "valid")
        commit, version = git_commit(), data_version(Path(store_dir) / "train")
        rescaled = _rescaled_copies(train_store, spec)
        tracker = start_run(
            ctx.tracking_uri if rank == 0 else None,
            ctx.experiment,
            f"train {model} x{scale}",
            tags={
                "srpipe.stage": "train",
                "srpipe.model": model,
                "srpipe.scale": scale,
                "git_commit": commit,
                "srpipe.data_version": version,
                "dvc.data_md5": dvc_md5(store_dir),
                "srpipe.note": criterion.note,
            },
            parent=ctx.parent_run_id,
        )
        tracker.params({**spec.as_dict(), "data_version": version, "params": count_params(net), "device": str(device)})
        try:
            result = fit(
                spec,
                st,
                train_store,
                valid,
                opts,
                device,
                ckpt if rank == 0 else None,
                tracker,
                amp,
                ctx.progress,
            )
        except KeyboardInterrupt:
            tracker.end("KILLED")
            if ckpt.exists():
                what = f"the checkpoint at {ckpt} is kept: run the same command again to resume from it"
            else:
                what = f"no checkpoint was written yet (one every {opts.ckpt_every} steps)"
            raise TrainingInterrupted(f"{model} x{scale}: training interrupted at step {st.step}; {what}") from None
        except BaseException:
            tracker.end("FAILED")
            raise
        # Where it ran: a Dask worker or torchrun rank shows up in the flow's results and the logs.
        summary = {"model": model, "scale": scale, **result, "note": criterion.note, "init": init}
        summary["worker"] = f"{socket.gethostname()}:{os.getpid()}"
        if rank == 0:
            last_state = {k: v.cpu() for k, v in st.ema.module.state_dict().items()}
            state = (st.best_state or last_state) if opts.keep == "best" else last_state
            card = WeightsCard(
                model=model,
                scale=scale,
                config=spec.config,
                color=spec.color,
                arch=spec.arch,
                train={
                    **spec.as_dict(),
                    "steps": result["steps"],
                    "train_seconds": result["seconds"],
                    # What it learned from (T91, DIV2K ...): the model's dataset filter, else the whole store.
                    "data": list(spec.datasets) or sorted(set(train_store.images["dataset"])),
                    "rescale": rescaled,  # the downscaled copies it also learned from (FSRCNN's augmentation)
                    "init": init,  # the weights it started from: file, model, scale, what was loaded and left fresh
                },
                metrics={
                    "val_psnr": st.best.get("psnr"),
                    "val_ssim": st.best.get("ssim"),
                    "best_step": st.best.get("step"),
                    "kept": opts.keep,  # which EMA weights this file holds: the best validation's or the last
                    "final_val_psnr": result["final"].get("psnr"),
                },
                git_commit=commit,
                mlflow_run_id=tracker.run_id,
                note=criterion.note,
            )
            save_weights(out_path, card, state)
            if owns_checkpoint(ckpt, spec):  # the run is complete: its weights file supersedes its own checkpoint
                ckpt.unlink()
            _log_artifacts(tracker, out_path, st, valid, spec, device)
            tracker.end()
            kept = st.best if opts.keep == "best" and st.best_state else result["final"]
            log.info(
                "%s x%d: wrote %s (the %s EMA weights: validation PSNR %.3f dB at step %s; best %.3f at step %s)",
                model,
                scale,
                out_path,
                opts.keep,
                kept.get("psnr", float("nan")),
                kept.get("step"),
                st.best.get("psnr", float("nan")),
                st.best.get("step"),
            )
        return summary
    finally:
        if owns_group:
            torch.distributed.destroy_process_group()


def initialise(net: torch.nn.Module, path: Path, model: str, scale: int) -> dict[str, Any]:
    """Load the weights file `path` into `net` (`model` built for `scale`) and say what was loaded.

    Same scale: every tensor, strictly (SRGAN from SRResNet). Another scale (EDSR Sec. 4.2: x3/x4 from x2): each
    tensor whose name and shape match, as EDSR-PyTorch's `load_state_dict` does, so the body is loaded and an
    up-sampler of another shape keeps its fresh initialisation; the names loaded and left are logged and returned.
    A start at another scale must come from the same model.
    """
    card, state = read_card(path)
    report = {"weights": str(path), "model": card.model, "scale": card.scale}
    if card.scale == scale:
        source, _ = load_model(path, scale=scale)
        net.load_state_dict(source.state_dict())
        log.info("initialised x%d from %s (%s x%d: every tensor)", scale, path, card.model, card.scale)
        return report | {"loaded": len(state), "fresh": [], "unused": []}
    if card.model != model:
        raise ValueError(f"{path} holds {card.model} x{card.scale}: another scale's start needs {model}'s own weights")
    own = net.state_dict()
    loaded = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not loaded:
        raise ValueError(f"{path} ({card.model} x{card.scale}) shares no tensor name and shape with this network")
    net.load_state_dict(loaded, strict=False)
    fresh = [k for k in own if k not in loaded]
    unused = [k for k in state if k not in loaded]
    log.info(
        "initialised x%d from %s (%s x%d): %d of %d tensors loaded; left fresh: %s; not used from the file: %s",
        scale,
        path,
        card.model,
        card.scale,
        len(loaded),
        len(own),
        ", ".join(fresh) or "none",
        ", ".join(unused) or "none",
    )
    return report | {"loaded": len(loaded), "fresh": fresh, "unused": unused}


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; the message says where the checkpoint is and how to resume."""


def claim_checkpoint(explicit: Path | None, out_path: Path, st: TrainState, spec: RunSpec, resume: bool | None) -> Path:
    """The checkpoint path of this run, after resuming from it when it matches; nothing else is ever overwritten.

    A file there that is not an srpipe checkpoint (a weights file, anything else, or one that cannot be read) is
    refused, never replaced. A checkpoint of other settings of the same model and scale is superseded only at the
    default path or with `resume=False` (--restart); one of another model or scale is always refused. Returns the
    path `fit` may write and, once the run is complete, delete.
    """
    ckpt = explicit or checkpoint_for(out_path)
    if os.path.abspath(ckpt) == os.path.abspath(out_path) or (
        ckpt.exists() and out_path.exists() and ckpt.samefile(out_path)
    ):
        raise ValueError(
            f"--checkpoint and --out are the same file ({ckpt}): the checkpoint is deleted once training ends"
        )
    if not ckpt.exists():
        if resume is True:
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt}")
        return ckpt
    blob = read_checkpoint(ckpt)  # CheckpointError for anything that is not an srpipe checkpoint: left untouched
    if blob.get("fingerprint") == spec.fingerprint():
        if resume is not False:
            load_checkpoint(ckpt, st, spec, blob)
        return ckpt
    if resume is True:
        raise CheckpointError(f"--resume: {ckpt} was written for other settings")
    run = blob.get("run") or {}
    if (run.get("model"), run.get("scale")) != (spec.model, spec.scale):
        raise CheckpointError(
            f"{ckpt} is the checkpoint of another run ({run.get('model')} x{run.get('scale')}); refusing to "
            "overwrite it: pass another --checkpoint"
        )
    if explicit is not None and resume is None:
        raise CheckpointError(
            f"{ckpt} is a checkpoint of {spec.model} x{spec.scale} with other settings; pass --restart to discard "
            "it, or another --checkpoint"
        )
    log.warning(
        "checkpoint %s is for other settings of %s x%d: starting afresh (it will be replaced)",
        ckpt,
        spec.model,
        spec.scale,
    )
    return ckpt


def net_channels(spec: RunSpec) -> int:
    return image_channels(spec.color)


def _log_artifacts(tracker: Any, out_path: Path, st: Any, valid: Store, spec: RunSpec, device: torch.device) -> None:
    if not tracker.enabled:
        return
    import tempfile

    tracker.artifact(out_path, "weights")
    if st.best_state is not None:
        st.ema.module.load_state_dict(st.best_state)
    _, images = validate(st.ema.module, valid, spec, device, keep=3)
    with tempfile.TemporaryDirectory() as tmp:
        for i, img in enumerate(images):
            save_png(Path(tmp) / f"{valid.image(i, spec.scale).name}_x{spec.scale}.png", np.ascontiguousarray(img))
        tracker.artifact(tmp, "validation")

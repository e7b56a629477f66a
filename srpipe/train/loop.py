"""The training loop: plain functions over a small explicit state (nanoGPT-readable, no god class).

One step = forward_train → the paper's loss → backward (AMP, clipping) → optimiser and schedule → EMA. Every
`val_every` steps the EMA weights are scored on the validation store (PSNR/SSIM on Y, crop = scale); every
`ckpt_every` steps everything needed to continue is written atomically, so a killed run resumes exactly.
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import logging
import math
import os
import random
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from srpipe.config import TrainParams
from srpipe.data.store import PatchDataset, StepSampler, Store
from srpipe.fsio import atomic_path
from srpipe.inference import super_resolve, to_uint8
from srpipe.metrics import psnr, ssim
from srpipe.models import count_params
from srpipe.models.registry import Recipe
from srpipe.tracking import Tracker
from srpipe.train.losses import Criterion
from srpipe.train.spec import RunSpec

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Too many consecutive non-finite losses: the run stops before it can save anything broken."""


class EMA:
    """Exponential moving average of weights and buffers (BasicSR's 0.999), warmed up like TF's num_updates.

    The effective decay min(decay, (1 + n) / (10 + n)) lets a short run's average follow its weights instead of
    staying at the random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for e, p in zip(self.module.state_dict().values(), model.state_dict().values()):
            if e.dtype.is_floating_point:
                e.lerp_(p.detach(), 1 - d)
            else:
                e.copy_(p)


class _TrainView(nn.Module):
    """Routes DDP's forward to `forward_train`, so gradient sync sees every auxiliary output."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> dict[str, Any]:
        return self.net.forward_train(x)


def lr_factor(step: int, spec: RunSpec) -> float:
    """The schedule as a pure function of the step (milestones are fractions of the budget)."""
    r, n = spec.recipe, max(1, spec.iterations)
    if r.schedule == "cosine":
        floor = r.min_lr / r.lr
        f = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, n) / n))
    elif r.schedule == "multistep":
        f = r.gamma ** sum(step >= round(m * n) for m in r.milestones)
    else:
        f = 1.0
    return max(f, r.min_lr / r.lr)


@dataclass
class TrainState:
    model: nn.Module  # the bare network (not DDP-wrapped)
    ema: EMA
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    criterion: Criterion
    step: int = 0
    best: dict[str, float] = field(default_factory=dict)
    best_state: dict[str, Tensor] | None = None
    bad_steps: int = 0


def param_groups(model: nn.Module, recipe: Recipe) -> list[dict[str, Any]]:
    """Optimiser groups for the recipe's per-layer rates; the first group holds the base rate (logged, clipped by)."""
    groups: dict[float, list[nn.Parameter]] = {1.0: []}
    used: set[str] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        pattern = next((k for k in recipe.lr_mult if fnmatch.fnmatchcase(name, k)), None)  # the first match wins
        if pattern is not None:
            used.add(pattern)
        groups.setdefault(recipe.lr_mult[pattern] if pattern else 1.0, []).append(p)
    if unused := set(recipe.lr_mult) - used:
        raise ValueError(f"recipe.lr_mult: no trainable parameter matches {sorted(unused)} in {type(model).__name__}")
    return [{"params": ps, "lr": recipe.lr * mult} for mult, ps in groups.items() if ps]


def clip_gradients(params: Iterable[nn.Parameter], recipe: Recipe, lr: float) -> None:
    """Clip gradients in place as `recipe.clip` says, with θ = `recipe.grad_clip` and `lr` the current base rate.

    "norm_by_lr" is Caffe's SGDSolver::ClipGradients (one scale factor for all gradients, so their global L2 norm is
    at most the threshold) with the DRRN/MemNet READMEs' patch making the threshold clip_gradients / GetLearningRate();
    "value_by_lr" is VDSR's adjustable clipping, each element within [-θ/γ, θ/γ] (Sec. 3.3).
    """
    grads = [p for p in params if p.grad is not None]
    theta = recipe.grad_clip
    if not theta or not grads:
        return
    if recipe.clip == "value_by_lr":
        torch.nn.utils.clip_grad_value_(grads, theta / lr)
    elif recipe.clip == "norm_by_lr":
        torch.nn.utils.clip_grad_norm_(grads, theta / lr)
    elif recipe.clip == "norm":
        torch.nn.utils.clip_grad_norm_(grads, theta)
    else:
        raise ValueError(f"recipe.clip: {recipe.clip!r} is not norm, norm_by_lr or value_by_lr")


def build_state(spec: RunSpec, model: nn.Module, criterion: Criterion, device: torch.device, fp16: bool) -> TrainState:
    r = spec.recipe
    params = param_groups(model, r)
    if r.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=r.lr, momentum=r.momentum, weight_decay=r.weight_decay)
    else:
        opt = torch.optim.Adam(params, lr=r.lr, betas=r.betas, weight_decay=r.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, functools.partial(lr_factor, spec=spec))
    scaler = torch.amp.GradScaler(device.type, enabled=fp16)
    return TrainState(model, EMA(model, spec.ema_decay), opt, sched, scaler, criterion)


CHECKPOINT_FORMAT = "srpipe-checkpoint/1"


class CheckpointError(ValueError):
    """A file at the checkpoint path is not this run's checkpoint (or not readable): it is left untouched."""


def _rng_state() -> dict[str, Any]:
    """Every generator's state as tensors and plain lists, so the checkpoint loads with `weights_only=True`."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos},
        "numpy_gauss": [has_gauss, cached],
        "python": [version, list(internal), gauss_next],
    }


def _set_rng_state(rng: dict[str, Any]) -> None:
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    n = rng["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], *rng["numpy_gauss"]))
    version, internal, gauss_next = rng["python"]
    random.setstate((version, tuple(internal), gauss_next))


def save_checkpoint(path: Path, st: TrainState, spec: RunSpec) -> None:
    """Everything needed to continue the run, as tensors and plain data only (loadable with `weights_only=True`)."""
    blob = {
        "format": CHECKPOINT_FORMAT,
        "fingerprint": spec.fingerprint(),
        "run": {"model": spec.model, "scale": spec.scale},
        "step": st.step,
        "model": st.model.state_dict(),
        "ema": st.ema.module.state_dict(),
        "ema_updates": st.ema.updates,
        "optimizer": st.optimizer.state_dict(),
        "scheduler": st.scheduler.state_dict(),
        "scaler": st.scaler.state_dict(),
        "criterion": st.criterion.state_dict(),
        "criterion_extra": st.criterion.extra_state(),
        "best": st.best,
        "best_state": st.best_state,
        "rng": _rng_state(),
    }
    with atomic_path(path, suffix=".ckpt") as tmp:
        torch.save(blob, tmp)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The content of the srpipe checkpoint at `path`, loaded as data only (a crafted file cannot run code).

    Raises:
        CheckpointError: the file is not readable (empty, truncated, corrupt, not plain data) or not an srpipe
            checkpoint; the message names it and says that it was left alone.
    """
    from srpipe.tensorfile import UnreadableFileError, load

    try:
        blob = load(path, "checkpoint")
    except UnreadableFileError as e:
        raise CheckpointError(f"{e}. It was left untouched: move or delete it, or pass another --checkpoint") from e
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: not an srpipe training checkpoint ({CHECKPOINT_FORMAT} expected); refusing to overwrite it: "
            "pass another --checkpoint, or move the file away"
        )
    return blob


def owns_checkpoint(path: Path, spec: RunSpec) -> bool:
    """True if `path` holds the checkpoint of exactly this run spec (safe to resume from, or to delete when done)."""
    try:
        return read_checkpoint(path).get("fingerprint") == spec.fingerprint()
    except (CheckpointError, FileNotFoundError):
        return False


def load_checkpoint(path: Path, st: TrainState, spec: RunSpec, blob: dict[str, Any] | None = None) -> bool:
    """Restore `st` from `path` if it belongs to the same run spec; False (and a log line) otherwise.

    `blob` is the file's content when the caller has already read it (`read_checkpoint`).
    """
    blob = read_checkpoint(path) if blob is None else blob
    if blob.get("fingerprint") != spec.fingerprint():
        log.warning("checkpoint %s is for other settings: starting afresh", path)
        return False
    st.model.load_state_dict(blob["model"])
    st.ema.module.load_state_dict(blob["ema"])
    st.ema.updates = blob["ema_updates"]
    st.optimizer.load_state_dict(blob["optimizer"])
    st.scheduler.load_state_dict(blob["scheduler"])
    st.scaler.load_state_dict(blob["scaler"])
    st.criterion.load_state_dict(blob["criterion"])
    st.criterion.load_extra_state(blob["criterion_extra"])
    st.step, st.best, st.best_state = blob["step"], blob["best"], blob["best_state"]
    _set_rng_state(blob["rng"])
    log.info("resumed %s at step %d of %d", path, st.step, spec.iterations)
    return True


@torch.no_grad()
def validate(
    model: nn.Module, valid: Store, spec: RunSpec, device: torch.device, keep: int = 0
) -> tuple[dict[str, float], list[np.ndarray]]:
    """Mean PSNR/SSIM (Y, crop = scale) of `model` on the validation store; the first `keep` SR images too."""
    scores, images = [], []
    for i in range(len(valid)):
        img = valid.image(i, spec.scale)
        lr = torch.from_numpy(np.array(img.lr)).permute(2, 0, 1)[None].to(device)
        sr = to_uint8(super_resolve(model, lr, spec.scale, spec.card.input_space, spec.color)).cpu()
        hr = torch.from_numpy(np.array(img.hr)).permute(2, 0, 1)[None]
        scores.append((psnr(sr, hr, spec.scale, gray=img.gray).item(), ssim(sr, hr, spec.scale, gray=img.gray).item()))
        if i < keep:
            images.append(sr[0].permute(1, 2, 0).numpy())
    return {"psnr": float(np.mean([s[0] for s in scores])), "ssim": float(np.mean([s[1] for s in scores]))}, images


def _workers(opts: TrainParams, device: torch.device) -> int:
    if opts.workers >= 0:
        return opts.workers
    cpus = os.cpu_count() or 1
    # On a small CPU box a worker process competes with the training step for the same cores.
    return min(8, cpus) if device.type == "cuda" else (0 if cpus <= 2 else min(4, cpus // 2))


def fit(
    spec: RunSpec,
    st: TrainState,
    train_store: Store,
    valid: Store,
    opts: TrainParams,
    device: torch.device,
    ckpt_path: Path | None,
    tracker: Tracker,
    amp_dtype: torch.dtype | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run steps `st.step`..`spec.iterations`; returns the final and best validation scores and counters."""
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    if spec.recipe.batch_size % world:
        raise ValueError(f"batch size {spec.recipe.batch_size} does not split over {world} processes")
    batch = spec.recipe.batch_size // world
    dataset = PatchDataset(
        train_store,
        spec.scale,
        spec.hr_patch,
        spec.color,
        spec.card.input_space == "bicubic",
        seed=spec.seed,
        datasets=spec.datasets,
        rescale=spec.recipe.rescale,
    )
    workers = _workers(opts, device)
    loader = DataLoader(
        dataset,
        batch_size=batch,
        sampler=StepSampler(st.step, spec.iterations, batch, rank, world),
        num_workers=workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if workers else None,
    )
    memory_format = torch.channels_last if opts.channels_last else torch.preserve_format
    if memory_format == torch.channels_last:  # weights and activations both NHWC: oneDNN's and cuDNN's fast layout
        st.model.to(memory_format=memory_format)
    net: nn.Module = _TrainView(st.model)
    if world > 1:
        net = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    if opts.compile:
        net = torch.compile(net)
    st.model.train()
    bar = tqdm(
        total=spec.iterations,
        initial=st.step,
        desc=f"train {spec.model} x{spec.scale}",
        disable=not (progress and rank == 0 and sys.stderr.isatty()),
    )
    t0 = t_last = time.perf_counter()
    step_last, last, final = st.step, {}, {}
    for inp, hr in loader:
        inp = inp.to(device, non_blocking=True).contiguous(memory_format=memory_format)
        hr = hr.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = net(inp)
        loss, parts = st.criterion({k: _float(v) for k, v in out.items()}, hr, inp, st.step / spec.iterations)
        finite = torch.isfinite(loss).float()
        if world > 1:
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)  # every rank skips together
        st.optimizer.zero_grad(set_to_none=True)
        if finite.item() < 1:
            st.bad_steps += 1
            log.warning(
                "step %d: non-finite loss (%s): batch skipped (%d in a row)", st.step, _fmt(parts), st.bad_steps
            )
            if st.bad_steps >= opts.max_bad_steps:
                raise NonFiniteLossError(
                    f"{spec.model} x{spec.scale}: {st.bad_steps} non-finite losses in a row up to step {st.step} "
                    f"(last: {_fmt(parts)}); lower the learning rate or check the data. Saved files are untouched."
                )
            continue
        st.bad_steps = 0
        st.scaler.scale(loss).backward()
        if spec.recipe.grad_clip:
            st.scaler.unscale_(st.optimizer)
            clip_gradients(st.model.parameters(), spec.recipe, spec.recipe.lr * lr_factor(st.step, spec))
        st.scaler.step(st.optimizer)
        st.scaler.update()
        parts |= st.criterion.update_discriminator(out["sr"].float(), hr)
        st.scheduler.step()
        st.ema.update(st.model)
        st.step += 1
        bar.update(1)
        if st.step % opts.log_every == 0 or st.step == spec.iterations:
            now = time.perf_counter()
            rate = (st.step - step_last) / max(now - t_last, 1e-9)
            t_last, step_last = now, st.step
            last = {"loss": loss.item(), "lr": st.optimizer.param_groups[0]["lr"], "it_per_s": rate}
            last |= {f"loss_{k}": float(v) for k, v in parts.items()}
            tracker.metrics(last, st.step)
            bar.set_postfix(loss=f"{last['loss']:.4g}", lr=f"{last['lr']:.2g}")
            if rank == 0 and bar.disable:  # no progress bar (not a terminal): plain log lines instead
                log.info("step %d/%d %s", st.step, spec.iterations, _fmt(last))
        if st.step % opts.val_every == 0 or st.step == spec.iterations:
            scores, _ = validate(st.ema.module, valid, spec, device)
            tracker.metrics({f"val_{k}": v for k, v in scores.items()}, st.step)
            log.info("step %d: validation PSNR %.3f dB, SSIM %.4f (EMA weights)", st.step, *scores.values())
            final = {**scores, "step": st.step}
            if scores["psnr"] > st.best.get("psnr", -math.inf):
                st.best = {**scores, "step": st.step}
                st.best_state = {k: v.detach().cpu().clone() for k, v in st.ema.module.state_dict().items()}
            st.model.train()
            t_last = time.perf_counter()  # it/s measures training steps, not validation
        if ckpt_path is not None and rank == 0 and (st.step % opts.ckpt_every == 0 or st.step == spec.iterations):
            save_checkpoint(ckpt_path, st, spec)
    bar.close()
    if world > 1:
        _check_replicas(st.model)
    return {"steps": st.step, "seconds": time.perf_counter() - t0, "best": st.best, "final": final, "last": last}


def _check_replicas(model: nn.Module) -> None:
    """After DDP training every rank must hold the same weights; fail loudly if not."""
    flat = torch.cat([p.detach().float().flatten().cpu() for p in model.parameters()])
    digest = torch.tensor([flat.sum().item(), (flat * flat).sum().item()], dtype=torch.float64)
    gathered = [torch.zeros_like(digest) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, digest)
    if any(not torch.equal(g, gathered[0]) for g in gathered):
        raise RuntimeError(f"DDP replicas diverged: {[g.tolist() for g in gathered]}")
    log.info("DDP: %d replicas hold identical weights (%d parameters)", len(gathered), count_params(model))


def _float(v: Any) -> Any:
    return [t.float() for t in v] if isinstance(v, list) else v.float()


def _fmt(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={float(v):.4g}" for k, v in values.items())

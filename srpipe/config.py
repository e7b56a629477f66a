"""`params.yaml`, loaded once into typed dataclasses whose sections mirror the stages.

Defaults live here, in the field declarations, and nowhere else; a key that is not a field is an error naming its
path, so a typo in params.yaml cannot be silently ignored (BasicSR's `**kwargs` trap).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

PRECISIONS = ("auto", "fp32", "bf16")  # train/evaluate `precision`; srpipe.runtime.amp_dtype maps them to dtypes
PROTOCOLS = ("rgb", "y-matlab", "rgb-float")  # evaluate `protocol`: what each does is srpipe.protocols' docstring

log = logging.getLogger(__name__)


def _at_least(owner: object, minimum: float, *names: str) -> None:
    """Every named field that is set (not None) is a number ≥ `minimum`: 0 never silently means "default"."""
    for name in names:
        value = getattr(owner, name)
        if value is not None and not value >= minimum:  # `not >=` also catches NaN
            raise ValueError(f"{name} must be ≥ {minimum:g}, got {value!r}")


def _one_of(owner: object, name: str, allowed: tuple[Any, ...]) -> None:
    value = getattr(owner, name)
    if value is not None and value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}, got {value!r}")


@dataclass(frozen=True)
class FinetuneJob:
    model: str  # trained starting from the weights of `init` (SRGAN from SRResNet, as the paper does)
    init: str


@dataclass(frozen=True)
class Job:
    model: str
    scale: int


@dataclass(frozen=True)
class CrossScaleJob:
    """`model` at `scale`, trained starting from its own trained model at `init_scale` (EDSR Sec. 4.2: x3 and x4
    from x2): the body is loaded, the up-sampler a different shape is left at its fresh initialisation."""

    model: str
    scale: int
    init_scale: int


@dataclass(frozen=True)
class PipelineParams:
    """What the pipeline produces: which networks at which scales (bicubic is always the baseline row)."""

    scales: tuple[int, ...] = (4,)  # the grid's scales, also the scales `prepare` degrades to
    models: tuple[str, ...] = ()  # trained from scratch at every scale of the grid
    finetune: tuple[FinetuneJob, ...] = ()  # trained from another model's weights, after it, at every scale
    # Off-grid pairs, named "<model>_x<scale>" (LapSRN and DRN have no x3, so they cannot sit in a x2/x3/x4 grid).
    extra: dict[str, Job] = field(default_factory=dict)
    # Pairs trained from the same model at another scale, named "<model>_x<scale>", after it (EDSR/RDN/RCAN x3 and
    # x4 from x2). Their model is not in `models` (that would train the pair twice); its init scale is a job above.
    cross_scale: dict[str, CrossScaleJob] = field(default_factory=dict)
    # The authors' released weights to import and evaluate beside the trained rows (catalog names, srpipe/data/
    # released.yaml); each is skipped with its reason when no mirror, cache or URL provides the file.
    released: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.scales or any(s < 2 for s in self.scales) or len(set(self.scales)) != len(self.scales):
            raise ValueError(f"scales must be distinct upscaling factors ≥ 2, got {list(self.scales)}")
        for name, job in self.extra.items():
            if name != f"{job.model}_x{job.scale}" or job.scale not in self.scales:
                raise ValueError(
                    f"pipeline.extra.{name}: must be named {job.model}_x{job.scale} and its scale be in pipeline.scales"
                )
        trained = self.jobs()
        for name, c in self.cross_scale.items():
            where = f"pipeline.cross_scale.{name}"
            if name != f"{c.model}_x{c.scale}" or c.scale not in self.scales:
                raise ValueError(f"{where}: must be named {c.model}_x{c.scale} and its scale be in pipeline.scales")
            if (c.model, c.init_scale) not in trained:
                raise ValueError(f"{where}: starts from {c.model} x{c.init_scale}, which no pipeline job trains")
            if c.scale == c.init_scale:
                raise ValueError(f"{where}: init_scale must differ from scale (same-scale starts are `finetune`)")
            if (c.model, c.scale) in trained:
                raise ValueError(f"{where}: {c.model} x{c.scale} is already trained from scratch (models or extra)")

    def check_models(self) -> None:
        """Every model named here is registered and supports its scales: checked before any download or training.

        Not in `__post_init__`: it imports the model registry (torch), which reading params must not.
        """
        from srpipe.models import get_card

        needed = [*self.jobs(), *((m, s) for m, s, _ in self.finetuned()), *((i, s) for _, s, i in self.finetuned())]
        needed += [(m, s) for m, s, _ in self.cross_scaled()]
        if self.released:
            from srpipe.released import get_released

            for name in self.released:
                get_released(name)  # KeyError naming the catalog's entries
        for f in self.finetune:
            paper = get_card(f.model).init_from
            if paper and f.init != paper:  # allowed (an experiment), but never silently
                log.warning("pipeline.finetune: %s starts from %s; its paper starts it from %s", f.model, f.init, paper)
        for model, scale in dict.fromkeys(needed):
            card = get_card(model)  # KeyError naming the known models
            if scale not in card.scales:
                raise ValueError(
                    f"pipeline: {model} has no x{scale} (it supports {', '.join(f'x{s}' for s in card.scales)})"
                )

    def jobs(self) -> list[tuple[str, int]]:
        """Every (model, scale) trained from scratch: the grid, then the extras."""
        grid = [(m, s) for m in self.models for s in self.scales]
        return grid + [(j.model, j.scale) for j in self.extra.values()]

    def finetuned(self) -> list[tuple[str, int, str]]:
        """Every (model, scale, init model) trained from another model's weights at the same scale."""
        return [(f.model, s, f.init) for f in self.finetune for s in self.scales]

    def cross_scaled(self) -> list[tuple[str, int, int]]:
        """Every (model, scale, init scale) trained from the same model's weights at another scale."""
        return [(c.model, c.scale, c.init_scale) for c in self.cross_scale.values()]

    def evaluated(self) -> list[tuple[str, int]]:
        """Every (model, scale) the pipeline evaluates: bicubic, the trained jobs, the finetuned and cross-scale."""
        started = [(m, s) for m, s, _ in self.finetuned()] + [(m, s) for m, s, _ in self.cross_scaled()]
        return [("bicubic", s) for s in self.scales] + self.jobs() + started


@dataclass(frozen=True)
class DataParams:
    datasets: dict[str, str] = field(default_factory=lambda: {"sample": "required"})  # name → required | optional
    mirrors: tuple[str, ...] = ()  # folders or base URLs, tried before the official URLs (SRPIPE_MIRRORS adds more)
    local: dict[str, str] = field(default_factory=dict)  # dataset → folder of images (e.g. Manga109)
    timeout: float = 30.0
    retries: int = 4

    def __post_init__(self) -> None:
        for name, kind in self.datasets.items():
            if kind not in ("required", "optional"):
                raise ValueError(f"datasets.{name} must be required or optional, got {kind!r}")
        _at_least(self, 0, "retries")
        if not self.timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout!r}")

    @property
    def optional(self) -> tuple[str, ...]:
        return tuple(k for k, v in self.datasets.items() if v == "optional")


@dataclass(frozen=True)
class PrepareParams:
    train: tuple[str, ...] = ("sample/train",)  # "<dataset>/<split>" folders under data/raw
    valid: tuple[str, ...] = ("sample/test",)
    lr_patch: int = 48  # LR side of an index patch (HR side = lr_patch × scale); models crop their own inside it
    stride: int = 24  # LR pixels between neighbouring index patches
    max_valid_side: int = 256  # validation images are centre-cropped to this HR side to keep validation quick
    # Extra copies of every training image, downscaled (MATLAB bicubic) by these factors before patches are cut:
    # FSRCNN's augmentation (Sec. 4.1: 0.9, 0.8, 0.7, 0.6). Only a model whose recipe names a factor learns from it.
    rescale: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        _at_least(self, 1, "lr_patch", "stride", "max_valid_side")
        if bad := [f for f in self.rescale if not 0 < f < 1]:
            raise ValueError(f"prepare.rescale: factors must lie strictly between 0 and 1, got {bad}")


@dataclass(frozen=True)
class ModelParams:
    """Per-model overrides of the paper recipe and config; None means "the paper's / the global default"."""

    config: str | None = None
    iterations: int | None = None  # this model's training budget (train.iterations for all of them)
    color: str | None = None  # "rgb" | "y" | "paper"
    datasets: tuple[str, ...] | None = None  # train-store datasets it learns from (DRN: DIV2K + Flickr2K = DF2K)
    arch: dict[str, Any] = field(default_factory=dict)  # create_model overrides (e.g. features: 32)
    # Recipe overrides (e.g. {lr: 0.001, milestones: [0.8]}): the one place a recipe field is set, as in train.recipe
    recipe: dict[str, Any] = field(default_factory=dict)
    # Keys of older params files and their one spelling now (from_dict says so rather than "unknown key")
    MOVED: typing.ClassVar[dict[str, str]] = {
        "lr": "<here>.recipe.lr",
        "batch_size": "<here>.recipe.batch_size",
        "patch_size": "<here>.recipe.patch_size",
        "init_from": "a pipeline.finetune entry, e.g. {model: srgan, init: srresnet}",
    }

    def __post_init__(self) -> None:
        _at_least(self, 1, "iterations")
        _one_of(self, "color", ("rgb", "y", "paper"))


@dataclass(frozen=True)
class TrainParams:
    config: str = "paper"  # "paper" | "tiny"
    iterations: int | None = None  # None = each paper's own total (Recipe.iterations)
    color: str = "rgb"  # "rgb", "y", or "paper" (each model's paper mode)
    val_every: int = 500
    ckpt_every: int = 500
    log_every: int = 50
    ema_decay: float = 0.999  # BasicSR's default
    # Which EMA weights the weights file keeps: "best" = those of the best validation (a guard for short budgets and
    # unstable recipes), "last" = those at the end of the budget, as a paper's final model (a small validation set
    # can peak early: FSRCNN's two-photo validation peaked at 16k of 48k steps while Set5 was still rising).
    keep: str = "best"
    seed: int = 0
    device: str = "auto"  # auto = CUDA when present, else CPU
    # auto | fp32 | bf16 (srpipe.runtime.amp_dtype): auto = bf16 autocast on CUDA and on CPUs with native bf16
    # (AVX512-BF16/AMX), fp16 with a grad scaler on older CUDA devices, fp32 elsewhere
    precision: str = "auto"
    channels_last: bool = True  # NHWC weights and activations: the layout of oneDNN's and cuDNN's fast kernels
    compile: bool = False
    workers: int = -1  # DataLoader workers; -1 = chosen from the CPU count
    max_bad_steps: int = 10  # consecutive non-finite losses before the run stops
    deterministic: bool = False
    vgg_weights: str | None = None  # torchvision vgg19 state dict for SRGAN's VGG54 loss; else the hub cache
    recipe: dict[str, Any] = field(default_factory=dict)  # Recipe overrides for every model (a CPU profile's)
    # Datasets of the train store (by name, e.g. DIV2K) every model learns from unless its entry says otherwise;
    # () = every image prepare put in the store.
    datasets: tuple[str, ...] = ()
    models: dict[str, ModelParams] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _at_least(self, 1, "iterations", "val_every", "ckpt_every", "log_every", "max_bad_steps")
        _at_least(self, -1, "workers")
        _one_of(self, "color", ("rgb", "y", "paper"))
        _one_of(self, "precision", PRECISIONS)
        _one_of(self, "keep", ("best", "last"))
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay!r}")

    def for_model(self, name: str) -> ModelParams:
        return self.models.get(name, ModelParams())


@dataclass(frozen=True)
class EvaluateParams:
    datasets: tuple[str, ...] = ("sample/test",)  # "<dataset>/<split>" folders under data/raw; absent ones skipped
    self_ensemble: bool = False
    # Models evaluated with the x8 self-ensemble whatever `self_ensemble` says: those whose published figures use it
    # (RED30: the authors' test code averages the 8 flips/rotations; its card says so), to compare like with like.
    self_ensemble_models: tuple[str, ...] = ()
    tile: int = 0  # LR px; 0 = the largest tile that fits under `max_memory` (the whole image when it fits)
    tile_overlap: int = 16
    # Cap on this process's resident memory, e.g. "3GB" (srpipe.memory.parse_size); the tile is picked from it before
    # the work. None: srpipe.memory.memory_cap's default, a share of the machine's available memory.
    max_memory: str | None = None
    flops_input: int = 64  # FLOPs are counted for an LR input of this side (the leaderboard states it)
    precision: str = "auto"  # as train.precision: bf16 where the device computes it natively (within 0.01 dB of fp32)
    latency_repeats: int = 5
    # How LR inputs are made and scored (srpipe.protocols): `rgb`, srpipe's and the EDSR/RCAN tables' convention, or
    # a Y-channel paper's own test code (`y-matlab`: SRCNN/FSRCNN/VDSR, `rgb-float`: LapSRN) to compare like with like.
    protocol: str = "rgb"

    def __post_init__(self) -> None:
        _at_least(self, 0, "tile", "tile_overlap")
        _at_least(self, 1, "flops_input", "latency_repeats")
        _one_of(self, "precision", PRECISIONS)
        if self.max_memory is not None:
            from srpipe.memory import parse_size

            try:
                parse_size(self.max_memory)
            except ValueError as e:
                raise ValueError(f"max_memory: {e}") from None
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"evaluate.protocol: {self.protocol!r} is not one of {', '.join(PROTOCOLS)}")


@dataclass(frozen=True)
class LeaderboardParams:
    visual_crop: int = 96  # HR side of the zoomed crop in visual_<dataset>.png

    def __post_init__(self) -> None:
        _at_least(self, 1, "visual_crop")


@dataclass(frozen=True)
class TrackingParams:
    uri: str = "sqlite:///mlflow.db"  # relative to the project; SRPIPE_TRACKING_URI / MLFLOW_TRACKING_URI override
    experiment: str = "srpipe"
    register_best: bool = True  # best model per scale → registry alias "champion"


@dataclass(frozen=True)
class OrchestrationParams:
    task_runner: str = "threads"  # "threads" | "dask"
    dask_address: str | None = None  # an existing Dask scheduler; None with "dask" = a local cluster
    max_concurrent_trainings: int = 1
    cron: str = "0 2 * * *"
    # Run `srpipe` commands (each DVC stage is one) in children of a fork server that has imported torch and MLflow
    # once (srpipe.forkserver): 6.2 → 3.0 s of overhead per training stage on 2 cores. SRPIPE_FORKSERVER=0/1 wins.
    forkserver: bool = False

    def __post_init__(self) -> None:
        _one_of(self, "task_runner", ("threads", "dask"))
        _at_least(self, 1, "max_concurrent_trainings")


@dataclass(frozen=True)
class Params:
    pipeline: PipelineParams = field(default_factory=PipelineParams)
    data: DataParams = field(default_factory=DataParams)
    prepare: PrepareParams = field(default_factory=PrepareParams)
    train: TrainParams = field(default_factory=TrainParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    leaderboard: LeaderboardParams = field(default_factory=LeaderboardParams)
    tracking: TrackingParams = field(default_factory=TrackingParams)
    orchestration: OrchestrationParams = field(default_factory=OrchestrationParams)

    def tracking_uri(self) -> str:
        return os.environ.get("SRPIPE_TRACKING_URI") or os.environ.get("MLFLOW_TRACKING_URI") or self.tracking.uri

    def digest(self) -> str:
        """A short hash of every setting: runs of the same params share it (the MLflow pipeline run's key)."""
        blob = json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


T = TypeVar("T")


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value or {}, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _convert(next(a for a in args if a is not type(None)), value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): _convert(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if (tp in (int, str, bool) and not isinstance(value, tp)) or (tp is int and isinstance(value, bool)):
        raise ValueError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "params") -> T:
    """Build dataclass `cls` from a mapping, converting nested sections; unknown keys raise with their path."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if moved := [k for k in unknown if k in getattr(cls, "MOVED", {})]:
        hint = cls.MOVED[moved[0]].replace("<here>", where)
        raise ValueError(f"{where}.{moved[0]}: write it as {hint} (one spelling per setting)")
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(names)}")
    fields = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**fields)
    except ValueError as e:  # a __post_init__ check: say where the offending section is
        raise ValueError(f"{where}: {e}") from None


def load_params(path: str | os.PathLike[str] | None = "params.yaml") -> Params:
    """Read a params file; None gives all defaults. A named file that is missing or not YAML is an error naming it."""
    import yaml

    if path is None:
        return Params()
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such parameters file")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    return from_dict(Params, data, where=str(path))

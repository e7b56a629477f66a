"""`params.yaml`, loaded once into typed dataclasses whose sections mirror the stages.

Defaults live here, in the field declarations, and nowhere else; a key that is not a field is an error naming its
path, so a typo in params.yaml cannot be silently ignored (BasicSR's `**kwargs` trap).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar


@dataclass(frozen=True)
class FinetuneJob:
    model: str  # trained starting from the weights of `init` (SRGAN from SRResNet, as the paper does)
    init: str


@dataclass(frozen=True)
class Job:
    model: str
    scale: int


@dataclass(frozen=True)
class PipelineParams:
    """What the pipeline produces: which networks at which scales (bicubic is always the baseline row)."""

    scales: tuple[int, ...] = (4,)  # the grid's scales, also the scales `prepare` degrades to
    models: tuple[str, ...] = ()  # trained from scratch at every scale of the grid
    finetune: tuple[FinetuneJob, ...] = ()  # trained from another model's weights, after it, at every scale
    # Off-grid pairs, named "<model>_x<scale>" (LapSRN and DRN have no x3, so they cannot sit in a x2/x3/x4 grid).
    extra: dict[str, Job] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, job in self.extra.items():
            if name != f"{job.model}_x{job.scale}" or job.scale not in self.scales:
                raise ValueError(
                    f"pipeline.extra.{name}: must be named {job.model}_x{job.scale} and its scale be in pipeline.scales"
                )

    def jobs(self) -> list[tuple[str, int]]:
        """Every (model, scale) trained from scratch: the grid, then the extras."""
        grid = [(m, s) for m in self.models for s in self.scales]
        return grid + [(j.model, j.scale) for j in self.extra.values()]

    def finetuned(self) -> list[tuple[str, int, str]]:
        """Every (model, scale, init model) trained from another model's weights at the same scale."""
        return [(f.model, s, f.init) for f in self.finetune for s in self.scales]

    def evaluated(self) -> list[tuple[str, int]]:
        """Every (model, scale) the pipeline evaluates: bicubic, the trained jobs and the finetuned ones."""
        return [("bicubic", s) for s in self.scales] + self.jobs() + [(m, s) for m, s, _ in self.finetuned()]


@dataclass(frozen=True)
class DataParams:
    datasets: dict[str, str] = field(default_factory=lambda: {"sample": "required"})  # name → required | optional
    mirrors: tuple[str, ...] = ()  # folders or base URLs, tried before the official URLs (SRPIPE_MIRRORS adds more)
    local: dict[str, str] = field(default_factory=dict)  # dataset → folder of images (e.g. Manga109)
    timeout: float = 30.0
    retries: int = 4

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


@dataclass(frozen=True)
class ModelParams:
    """Per-model overrides of the paper recipe and config; None means "the paper's / the global default"."""

    config: str | None = None
    iterations: int | None = None
    batch_size: int | None = None
    patch_size: int | None = None  # HR patch side
    lr: float | None = None
    color: str | None = None  # "rgb" | "y" | "paper"
    init_from: str | None = None  # another model's weights initialise this one (SRGAN ← SRResNet)
    arch: dict[str, Any] = field(default_factory=dict)  # create_model overrides (e.g. features: 32)
    recipe: dict[str, Any] = field(default_factory=dict)  # Recipe overrides (e.g. milestones: [0.8])


@dataclass(frozen=True)
class TrainParams:
    config: str = "paper"  # "paper" | "tiny"
    iterations: int | None = None  # None = each paper's own total (Recipe.iterations)
    color: str = "rgb"  # "rgb", "y", or "paper" (each model's paper mode)
    val_every: int = 500
    ckpt_every: int = 500
    log_every: int = 50
    ema_decay: float = 0.999  # BasicSR's default
    seed: int = 0
    device: str = "auto"  # auto = CUDA when present, else CPU
    amp: bool = True  # CUDA only: bf16 where supported, else fp16 with a grad scaler
    channels_last: bool = True  # CUDA only
    compile: bool = False
    workers: int = -1  # DataLoader workers; -1 = chosen from the CPU count
    max_bad_steps: int = 10  # consecutive non-finite losses before the run stops
    deterministic: bool = False
    vgg_weights: str | None = None  # torchvision vgg19 state dict for SRGAN's VGG54 loss; else the hub cache
    recipe: dict[str, Any] = field(default_factory=dict)  # Recipe overrides for every model (a CPU profile's)
    models: dict[str, ModelParams] = field(default_factory=dict)

    def for_model(self, name: str) -> ModelParams:
        return self.models.get(name, ModelParams())


@dataclass(frozen=True)
class EvaluateParams:
    datasets: tuple[str, ...] = ("sample/test",)  # "<dataset>/<split>" folders under data/raw; absent ones skipped
    self_ensemble: bool = False
    tile: int = 0  # 0 = whole image unless it would not fit, then tiles
    tile_overlap: int = 16
    flops_input: int = 64  # FLOPs are counted for an LR input of this side (the leaderboard states it)
    latency_repeats: int = 5


@dataclass(frozen=True)
class LeaderboardParams:
    visual_crop: int = 96  # HR side of the zoomed crop in visual_<dataset>.png


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
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(names)}")
    return cls(**{k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()})


def load_params(path: str | os.PathLike[str] | None = "params.yaml") -> Params:
    """Read params.yaml (absent file → all defaults)."""
    import yaml

    if path is None or not Path(path).exists():
        return Params()
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    return from_dict(Params, data, where=str(path))

"""Model registry: every architecture registers its paper config, a tiny CPU config and a card of paper facts.

`create_model(name, scale, config="paper"|"tiny", **overrides)` is the one way the rest of srpipe builds a network
(the timm/BasicSR factory idea). Cards carry what training and the leaderboard need to know about the paper: scales,
input space, colour mode and the training recipe.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import Tensor, nn

InputSpace = Literal["lr", "bicubic"]  # "bicubic": the network takes the LR image bicubic-upsampled to HR size
ColorMode = Literal["y", "rgb"]


@dataclass(frozen=True)
class Recipe:
    """A paper's training recipe. Milestones are fractions of the budget, so a short budget keeps its shape."""

    loss: str = "l1"  # name in srpipe.train.losses: mse, l1, charbonnier, drcn, memnet, lapsrn, drn, srgan
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: Literal["multistep", "cosine", "constant"] = "multistep"
    milestones: tuple[float, ...] = (0.5,)
    gamma: float = 0.5
    min_lr: float = 0.0  # the cosine schedule's floor (DRN: 1e-7)
    grad_clip: float | None = None  # θ of the clipping `clip` names (None: no clipping)
    # How θ bounds the gradients: "norm" = the global L2 norm of all gradients ≤ θ (torch clip_grad_norm_);
    # "norm_by_lr" = the global L2 norm ≤ θ/lr, lr the current base rate (Caffe's clip_gradients with the
    # adjustable-clipping patch of the DRRN/MemNet READMEs); "value_by_lr" = each element within ±θ/lr (VDSR Sec. 3.3).
    clip: Literal["norm", "norm_by_lr", "value_by_lr"] = "norm"
    batch_size: int = 16
    patch_size: int = 96  # HR patch side, for papers that crop HR patches (SRCNN 33, VDSR 41, LapSRN 128 ...)
    lr_patch: int | None = None  # LR patch side, for papers that crop LR patches (EDSR/RCAN 48): HR = lr_patch × s
    iterations: int = 300_000  # the paper's total, for reference; srpipe's budget is train.iterations
    # Extra knobs of the loss. "reduction" (mse, l1, charbonnier, drcn, memnet, lapsrn): how a term's per-pixel errors
    # become a number, which sets the gradient's scale and so the meaning of lr, weight decay and θ:
    #   "mean" (the default): averaged over every pixel of the batch;
    #   "sum": summed over each image's pixels, averaged over the batch (LapSRN's code);
    #   "euclidean": half that, 1/(2N)·Σ‖ŷ−y‖² (Caffe's EuclideanLoss: SRCNN, FSRCNN, DRRN, MemNet; VDSR/DRCN's Eq.).
    loss_options: Mapping[str, Any] = field(default_factory=dict)
    # The paper's per-layer learning rates: parameters whose name matches a glob learn at lr × factor, e.g.
    # {"reconstruct.*": 0.1} (SRCNN's last layer at 1e-5 beside 1e-4) or {"*.bias": 0.1}; the first match wins.
    # An override replaces the whole map (it is not merged): `{}` gives every parameter the base rate.
    lr_mult: Mapping[str, float] = field(default_factory=dict)
    # The paper trains its other scales starting from its trained model at this scale (EDSR Sec. 4.2, RCAN's and
    # RDN's scripts: 2); `pipeline.cross_scale` in params does it, the train stage warns when it is not done.
    init_scale: int | None = None
    # The paper also learns from copies of its training images downscaled by these factors (FSRCNN Sec. 4.1: 0.9 …
    # 0.6); `prepare.rescale` builds them into the store, and only a recipe naming a factor draws from its copies.
    rescale: tuple[float, ...] = ()

    def __post_init__(self) -> None:  # a params override is replaced into a card's recipe: checked the same way
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        for name in ("batch_size", "patch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)!r}")

    def hr_patch(self, scale: int) -> int:
        """HR patch side at `scale`, a multiple of it (a 33-px SRCNN patch becomes 32 at x4)."""
        side = self.lr_patch * scale if self.lr_patch else self.patch_size
        return max(scale, side - side % scale)


@dataclass(frozen=True)
class ModelCard:
    """Facts about a network's paper, read by training, evaluation and the leaderboard."""

    name: str
    title: str
    authors: str
    venue: str
    year: int
    arxiv: str
    scales: tuple[int, ...]
    input_space: InputSpace
    color: ColorMode  # the paper's colour mode; srpipe trains RGB unless asked for the paper's
    recipe: Recipe
    notes: str = ""
    # The published figures average the x8 flips/rotations at test time (RED30's test code), so the leaderboard can
    # say whether a row was evaluated the same way (evaluate.self_ensemble_models lists the models to run so).
    published_self_ensemble: bool = False
    learned: bool = True  # False for a network with nothing to learn (bicubic): it runs without a weights file
    # The paper trains it starting from another network's trained weights (SRGAN ← SRResNet): the plan's finetune
    # jobs name that network (pipeline.finetune, checked against this), and training without it warns.
    init_from: str | None = None

    @property
    def paper(self) -> str:
        """Short citation: "Lim et al., CVPRW 2017"."""
        first = self.authors.split(",")[0].replace("et al.", "").split()
        several = "," in self.authors or "et al" in self.authors
        return f"{first[-1] if first else '?'}{' et al.' if several else ''}, {self.venue} {self.year}"


@dataclass(frozen=True)
class ArchConfig:
    """Base of every architecture config: the number of image channels (3 = RGB, 1 = Y only)."""

    channels: int = 3


@dataclass(frozen=True)
class ModelEntry:
    cls: Callable[..., nn.Module]
    card: ModelCard
    configs: Mapping[str, ArchConfig]


class SRModel(nn.Module):
    """Base class: `forward(x)` returns the SR image; `forward_train(x)` adds the auxiliary outputs losses need."""

    def forward_train(self, x: Tensor) -> dict[str, Any]:
        """Outputs for the loss: at least ``"sr"``; families add e.g. ``"levels"``, ``"recursions"``, ``"dual"``."""
        return {"sr": self(x)}


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    card: ModelCard, paper: ArchConfig, tiny: ArchConfig, variants: Mapping[str, ArchConfig] | None = None
) -> Callable[[type], type]:
    """Class decorator registering `card.name` with its paper and tiny configs, plus named paper `variants` (SRCNN's
    9-1-5 / 9-3-5) that released weights and `create_model(name, scale, "<variant>")` can name."""

    def wrap(cls: type) -> type:
        if card.name in _REGISTRY:
            raise KeyError(f"model {card.name!r} is already registered (by {_REGISTRY[card.name].cls.__name__})")
        configs = {"paper": paper, "tiny": tiny, **(variants or {})}
        _REGISTRY[card.name] = ModelEntry(cls=cls, card=card, configs=configs)
        return cls

    return wrap


def _entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(list_models())}") from None


def list_models() -> list[str]:
    """Names of all registered models, in registration order (the survey's chronology)."""
    return list(_REGISTRY)


def get_card(name: str) -> ModelCard:
    return _entry(name).card


def get_config(name: str, config: str = "paper", **overrides: Any) -> ArchConfig:
    """The named config of a model with `overrides` applied (overrides that are None are dropped, like timm)."""
    entry = _entry(name)
    if config not in entry.configs:
        raise KeyError(f"model {name!r} has no config {config!r}; choose from {sorted(entry.configs)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    known = {f.name for f in dataclasses.fields(entry.configs[config])}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"model {name!r} has no option(s) {unknown}; its options are {sorted(known)}")
    return dataclasses.replace(entry.configs[config], **overrides)


def create_model(name: str, scale: int, config: str = "paper", **overrides: Any) -> nn.Module:
    """Build model `name` for upscaling factor `scale` from its `paper` or `tiny` config plus `overrides`."""
    card = get_card(name)
    if scale not in card.scales:
        supported = ", ".join(f"x{s}" for s in card.scales)
        raise ValueError(f"{name} supports {supported} only (paper: {card.paper}); x{scale} was asked for")
    return _entry(name).cls(scale, get_config(name, config, **overrides))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

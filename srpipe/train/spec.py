"""The effective settings of one training run: the paper recipe with params.yaml overrides applied, once."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from srpipe.config import ModelParams, TrainParams
from srpipe.models import get_card
from srpipe.models.registry import ModelCard, Recipe


@dataclass(frozen=True)
class RunSpec:
    model: str
    scale: int
    config: str
    color: str  # "rgb" | "y"
    iterations: int
    recipe: Recipe
    arch: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    ema_decay: float = 0.999
    init_from: str | None = None
    datasets: tuple[str, ...] = ()  # the train store's datasets it learns from; () = all

    def __post_init__(self) -> None:
        # CLI overrides reach the spec without passing through params' checks; a bad budget must not train at all.
        for name, value in (("iterations", self.iterations), ("batch size", self.recipe.batch_size)):
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{self.model} x{self.scale}: {name} must be ≥ 1, got {value!r}")
        if not self.recipe.lr > 0:
            raise ValueError(f"{self.model} x{self.scale}: learning rate must be > 0, got {self.recipe.lr!r}")
        if self.scale not in self.card.scales:
            raise ValueError(
                f"{self.model} has no x{self.scale} (it supports {', '.join(f'x{s}' for s in self.card.scales)})"
            )

    @property
    def card(self) -> ModelCard:
        return get_card(self.model)

    @property
    def hr_patch(self) -> int:
        return self.recipe.hr_patch(self.scale)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """Hash of everything that shapes the weights: a checkpoint resumes only a run with the same one."""
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True, default=str).encode()).hexdigest()[:16]


def result_key(spec: RunSpec, train: TrainParams) -> str:
    """Everything that decides a training's output file: the run spec plus the engine options that select or
    shape the saved weights (validation cadence, precision, device). Per-model entries of other models are left out,
    so editing one model's params never invalidates another's cached training."""
    engine = dataclasses.asdict(dataclasses.replace(train, models={}))
    blob = json.dumps({"spec": spec.fingerprint(), "engine": engine}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def resolve(model: str, scale: int, train: TrainParams, **cli: Any) -> RunSpec:
    """Paper recipe ← `train.recipe` ← `train.models.<model>` ← CLI overrides (None = unset)."""
    card = get_card(model)
    mp = train.for_model(model)
    try:  # typed like params.yaml's train.models entries: a mistyped key or a bad value fails on every front door
        given = ModelParams(**{k: v for k, v in cli.items() if v is not None})
    except TypeError as e:
        raise TypeError(f"{model}: training override: {e}") from None
    cli = {k: v for k, v in dataclasses.asdict(given).items() if v is not None and k in cli}
    layers = (train.recipe, mp.recipe, cli.get("recipe") or {})  # params' global, then the model's, then the CLI's
    recipe_overrides = {k: v for layer in layers for k, v in dict(layer).items()}
    if "iterations" in recipe_overrides:
        raise ValueError(
            f"train.recipe / train.models.{model}.recipe: `iterations` is the paper's total (its card's fact); "
            "the training budget is train.iterations or train.models.<model>.iterations"
        )
    if "patch_size" in recipe_overrides:
        recipe_overrides["lr_patch"] = None  # an explicit HR patch side wins over the paper's LR side
    unknown = set(recipe_overrides) - {f.name for f in dataclasses.fields(Recipe)}
    if unknown:
        raise ValueError(f"train.recipe / train.models.{model}.recipe: unknown recipe key(s) {sorted(unknown)}")
    recipe_overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in recipe_overrides.items()}
    if "loss_options" in recipe_overrides:  # merged paper ← global ← model, so one knob changes alone (e.g. a CPU
        # profile's global {reduction: mean} survives a model's own {d_features: 16})
        options = (card.recipe.loss_options, *(layer.get("loss_options") or {} for layer in layers))
        recipe_overrides["loss_options"] = {k: v for layer in options for k, v in layer.items()}
    try:
        recipe = dataclasses.replace(card.recipe, **recipe_overrides)
    except ValueError as e:
        raise ValueError(f"train.recipe / train.models.{model}.recipe: {e}") from None
    color = cli.get("color") or mp.color or train.color
    if color == "paper":
        color = card.color
    if color not in ("rgb", "y"):
        raise ValueError(f"color must be rgb, y or paper, not {color!r}")
    return RunSpec(
        model=model,
        scale=scale,
        config=cli.get("config") or mp.config or train.config,
        color=color,
        # The first one set, not the first truthy one: an explicit 0 is refused below, never taken as "unset".
        iterations=next(
            i for i in (cli.get("iterations"), mp.iterations, train.iterations, recipe.iterations, 0) if i is not None
        ),
        recipe=recipe,
        arch=dict(mp.arch),
        seed=train.seed,
        ema_decay=train.ema_decay,
        init_from=card.init_from,
        datasets=tuple(mp.datasets if mp.datasets is not None else train.datasets),
    )


def train_key(model: str, scale: int, train: TrainParams, data_version: str, init_digest: str = "") -> str:
    """What makes a training stale: its resolved run spec and training options (`result_key`), the data version of
    the store and the digest of the weights it starts from. dvc.yaml lists the same params (tests/test_dvc_yaml.py)."""
    return f"{result_key(resolve(model, scale, train), train)}-{data_version}-{init_digest}"

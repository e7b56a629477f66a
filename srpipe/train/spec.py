"""The effective settings of one training run: the paper recipe with params.yaml overrides applied, once."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from srpipe.config import TrainParams
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
    cli = {k: v for k, v in cli.items() if v is not None}
    recipe_overrides = dict(train.recipe) | dict(mp.recipe)
    for key in ("lr", "batch_size", "patch_size"):
        value = cli.get(key, getattr(mp, key))
        if value is not None:
            recipe_overrides[key] = value
    if "patch_size" in recipe_overrides:
        recipe_overrides["lr_patch"] = None  # an explicit HR patch side wins over the paper's LR side
    unknown = set(recipe_overrides) - {f.name for f in dataclasses.fields(Recipe)}
    if unknown:
        raise ValueError(f"train.recipe / train.models.{model}: unknown recipe key(s) {sorted(unknown)}")
    recipe_overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in recipe_overrides.items()}
    if "loss_options" in recipe_overrides:  # merged, so one knob can change without restating the paper's others
        recipe_overrides["loss_options"] = {**card.recipe.loss_options, **recipe_overrides["loss_options"]}
    recipe = dataclasses.replace(card.recipe, **recipe_overrides)
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
        iterations=cli.get("iterations") or mp.iterations or train.iterations or recipe.iterations,
        recipe=recipe,
        arch=dict(mp.arch),
        seed=train.seed,
        ema_decay=train.ema_decay,
        init_from=mp.init_from or recipe.loss_options.get("init_from"),
    )

"""The weights file: a state dict plus the card needed to rebuild the model from the file alone.

Any tool can call `load_model(path)`; asking for a model or scale that the file was not trained for is refused with
a message naming both, instead of a shape error deep inside `load_state_dict`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from srpipe.fsio import atomic_path
from srpipe.models import create_model, get_card

FORMAT = "srpipe-weights/1"


@dataclass(frozen=True)
class WeightsCard:
    model: str
    scale: int
    config: str  # "paper" | "tiny"
    color: str  # "rgb" | "y": what the network sees
    arch: dict[str, Any] = field(default_factory=dict)  # create_model overrides beyond channels
    train: dict[str, Any] = field(default_factory=dict)  # the effective training params and recipe
    metrics: dict[str, Any] = field(default_factory=dict)
    git_commit: str = ""
    mlflow_run_id: str = ""
    note: str = ""  # e.g. "SRGAN-MSE: no VGG19 weights, trained with the MSE content loss"
    # Provenance (defaults keep older files readable): "trained here" or "released" (the authors' checkpoint,
    # converted by `srpipe import`); for released weights the repository/URL, the original file's sha256, the
    # authors' training data and their name for the variant (e.g. "SRCNN 9-5-5 (ImageNet)").
    origin: str = "trained here"
    source: str = ""
    source_sha256: str = ""
    training_data: str = ""
    variant: str = ""

    @property
    def channels(self) -> int:
        return 1 if self.color == "y" else 3

    def build(self) -> nn.Module:
        return create_model(self.model, self.scale, self.config, channels=self.channels, **self.arch)


def save_weights(path: str | os.PathLike[str], card: WeightsCard, state_dict: dict[str, torch.Tensor]) -> None:
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save({"format": FORMAT, "card": dataclasses.asdict(card), "state_dict": state_dict}, tmp)


def read_card(path: str | os.PathLike[str]) -> tuple[WeightsCard, dict[str, torch.Tensor]]:
    from srpipe.tensorfile import load

    blob = load(path, "weights file")  # data only; errors name the file and never advise weights_only=False
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path}: not an srpipe weights file (format {FORMAT!r} expected)")
    return WeightsCard(**blob["card"]), blob["state_dict"]


def load_model(
    path: str | os.PathLike[str], model: str | None = None, scale: int | None = None
) -> tuple[nn.Module, WeightsCard]:
    """Rebuild and load the model in `path`; refuse if it is not `model` at `scale` (when given)."""
    card, state = read_card(path)
    if model is not None and model != card.model:
        raise ValueError(f"{path} holds weights of {card.model!r}, not {model!r}")
    if scale is not None and scale != card.scale:
        raise ValueError(f"{path} holds {card.model} weights for x{card.scale}, not x{scale}")
    get_card(card.model)  # unknown model names fail with the registry's list
    net = card.build()
    net.load_state_dict(state, strict=True)
    return net.eval(), card

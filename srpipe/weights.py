"""The weights file: a state dict plus the card needed to rebuild the model from the file alone.

Any tool can call `load_model(path)`; asking for a model or scale that the file was not trained for is refused with
a message naming both, instead of a shape error deep inside `load_state_dict`. The card carries a sha256 of the
tensors, so a file whose bytes changed after it was written is refused rather than silently scoring lower.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from srpipe.fsio import atomic_path
from srpipe.integrity import CorruptDataError, new_hash, tagged
from srpipe.models import create_model, get_card
from srpipe.runtime import image_channels

log = logging.getLogger(__name__)

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
    # `sha256:<hex>` of the state dict (`state_digest`), set by `save_weights`; "" in files written before it existed.
    digest: str = ""

    @property
    def channels(self) -> int:
        return image_channels(self.color)

    def build(self) -> nn.Module:
        return create_model(self.model, self.scale, self.config, channels=self.channels, **self.arch)


def state_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """`sha256:<hex>` over each tensor's name, dtype, shape and bytes, in sorted key order.

    Tensors, not the file: the same weights digest the same whatever torch's zip layout, and a change in any value,
    name or shape changes it.
    """
    h = new_hash()
    for key in sorted(state_dict):
        t = state_dict[key]
        if not isinstance(t, torch.Tensor):  # e.g. a module's `_extra_state`: its repr stands for it
            h.update(f"{key}|{t!r}\n".encode())
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return tagged(h)


def save_weights(path: str | os.PathLike[str], card: WeightsCard, state_dict: dict[str, torch.Tensor]) -> None:
    card = dataclasses.replace(card, digest=state_digest(state_dict))
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save({"format": FORMAT, "card": dataclasses.asdict(card), "state_dict": state_dict}, tmp)


def _rebuild_hint(path: str | os.PathLike[str], card: WeightsCard) -> str:
    """How to get a good copy of `path` back: re-import released weights; restore or retrain trained ones."""
    from srpipe.released import ORIGIN_RELEASED, load_released

    if card.origin == ORIGIN_RELEASED:
        sha = f"sha256:{card.source_sha256}"
        entry = next((e.name for e in load_released()[0].values() if e.checksum == sha), None)
        if entry:
            return f"re-import it with `srpipe import --released {entry}`"
        src = card.source or "FILE"
        return f"re-import it with `srpipe import {src} --model {card.model} --scale {card.scale} --out {path}`"
    from srpipe.provenance import dvc_md5

    retrain = f"`srpipe train --model {card.model} --scale {card.scale} --out {path}`"
    if dvc_md5(path):
        return f"restore it with `dvc checkout {path}` (or rebuild it with `dvc repro`, or {retrain})"
    return f"retrain it with {retrain} (or `dvc checkout {path}` / `dvc repro` where DVC tracks it)"


_unverified: set[str] = set()


def _verify(path: str | os.PathLike[str], card: WeightsCard, state: dict[str, torch.Tensor]) -> None:
    """Refuse weights whose tensors differ from the digest written with them; files from before digests pass."""
    if not card.digest:
        if str(path) not in _unverified:  # once per file and process: evaluate loops would repeat it
            _unverified.add(str(path))
            log.warning("%s: written before weights carried a digest: loaded unverified", path)
        return
    actual = state_digest(state)
    if actual != card.digest:
        raise CorruptDataError(
            f"{path}: the weights are corrupt (their {actual[:19]}… differs from the {card.digest[:19]}… recorded "
            f"when the file was written); {_rebuild_hint(path, card)}"
        )


def read_card(path: str | os.PathLike[str]) -> tuple[WeightsCard, dict[str, torch.Tensor]]:
    """The card and state dict of `path`, verified against the card's digest.

    Raises:
        CorruptDataError: the tensors changed since the file was written; the message says how to rebuild it.
    """
    from srpipe.tensorfile import load

    blob = load(path, "weights file")  # data only; errors name the file and never advise weights_only=False
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path}: not an srpipe weights file (format {FORMAT!r} expected)")
    card, state = WeightsCard(**blob["card"]), blob["state_dict"]
    _verify(path, card, state)
    return card, state


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

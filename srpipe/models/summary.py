"""A table of the zoo: every model × scale × config with its parameter count, built on the meta device (no memory)."""

from __future__ import annotations

from typing import Any

import torch

from srpipe.models.registry import count_params, create_model, get_card, list_models


def model_table() -> list[dict[str, Any]]:
    rows = []
    for name in list_models():
        card = get_card(name)
        for config in ("paper", "tiny"):
            # The paper config is counted in the paper's colour mode (Y-only nets have 1 channel), as papers count.
            channels = 1 if config == "paper" and card.color == "y" else 3
            for scale in card.scales:
                with torch.device("meta"):  # EDSR's 43M parameters cost nothing to count here
                    n = count_params(create_model(name, scale, config, channels=channels))
                rows.append(
                    {
                        "name": name,
                        "scale": scale,
                        "config": config,
                        "params": n,
                        "channels": channels,
                        "paper": card.paper,
                        "title": card.title,
                        "year": card.year,
                        "arxiv": card.arxiv,
                        "scales": list(card.scales),
                        "input_space": card.input_space,
                        "color": card.color,
                        "loss": card.recipe.loss,
                    }
                )
    return rows

"""A table of the zoo: every model × scale × config with its parameter count, built on the meta device (no memory)."""

from __future__ import annotations

from typing import Any

import torch

from srpipe.models.registry import count_params, create_model, get_card, list_models
from srpipe.runtime import image_channels


def model_table() -> list[dict[str, Any]]:
    rows = []
    for name in list_models():
        card = get_card(name)
        for config in ("paper", "tiny"):
            # The paper config is counted in the paper's colour mode (Y-only nets have 1 channel), as papers count.
            channels = image_channels(card.color if config == "paper" else "rgb")
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


def _human(n: int | None) -> str:
    if n is None:
        return "—"
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}K" if n >= 1e3 else str(n)


def format_table(rows: list[dict[str, Any]]) -> str:
    """`srpipe models`: one line per network, its paper config's parameter counts at x2 and x4."""
    from tabulate import tabulate

    paper = [r for r in rows if r["config"] == "paper"]
    counts = {(r["name"], r["scale"]): r["params"] for r in paper}
    first: dict[str, dict[str, Any]] = {}
    for r in paper:
        first.setdefault(r["name"], r)  # one line per model, in registry order
    table = [
        [
            name,
            r["paper"],
            _human(counts.get((name, 2))),
            _human(counts.get((name, 4))),
            ",".join(f"x{s}" for s in r["scales"]),
            r["input_space"],
            r["color"],
        ]
        for name, r in first.items()
    ]
    return tabulate(table, headers=["model", "paper", "params x2", "params x4", "scales", "input", "paper colour"])

"""What every stage receives besides its inputs, outputs and params section: the stage contract's `ctx`.

A stage is `stage(inputs, outputs, <Section>Params, ctx)`. The front doors (CLI command, Prefect task, DVC stage via
the CLI) build one `Context` each — where the stage's runs are tracked, which device it runs on, whether it draws
progress bars — instead of threading tracking URI, experiment, parent run, device and progress through every call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from srpipe.config import Params


@dataclass(frozen=True)
class Context:
    tracking_uri: str | None = None  # None: tracking off
    experiment: str = "srpipe"
    parent_run_id: str | None = None  # the pipeline run the stage's runs nest under
    device: str = "auto"  # auto = CUDA when present, else CPU (srpipe.runtime.pick_device)
    progress: bool = True

    @classmethod
    def of(
        cls,
        params: Params,
        *,
        parent_run_id: str | None = None,
        device: str = "auto",
        progress: bool = True,
        track: bool = True,
    ) -> Context:
        """The context `params` describe (tracking.uri, or SRPIPE_TRACKING_URI / MLFLOW_TRACKING_URI); `track=False`
        or an empty URI switches tracking off."""
        uri = (params.tracking_uri() or None) if track else None
        return cls(uri, params.tracking.experiment, parent_run_id if uri else None, device, progress)


DEFAULT = Context()  # a library call's: no tracking, device auto, progress bars
QUIET = Context(progress=False)  # no tracking, no progress bars: tests, benches

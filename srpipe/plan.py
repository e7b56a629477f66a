"""The pipeline's plan, written once: where every artefact lives (`Layout`), which jobs params ask for and in what
order (`plan`), and the key of a pipeline execution (`run_key`); what makes one training stale is
`srpipe.train.spec.train_key`, beside the run spec it hashes.

The Prefect flow orders and maps these jobs; the CLI's path defaults and the training stage's checkpoint path come
from `Layout`; `dvc.yaml` spells the same paths for DVC (tests/test_dvc_yaml.py holds its deps and params against
the code, tests/test_plan.py its paths against `Layout`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from srpipe.config import Params, PipelineParams


@dataclass(frozen=True)
class Layout:
    """Every artefact's path under a project root: data/{code,raw,prepared,models,eval,released}, leaderboard/."""

    root: Path = Path()

    @property
    def code(self) -> Path:
        """One manifest per command of the source files it runs (srpipe.codedeps): what DVC stages depend on."""
        return self.root / "data" / "code"

    def code_manifest(self, command: str) -> Path:
        return self.code / f"{command}.txt"

    @property
    def raw(self) -> Path:
        return self.root / "data" / "raw"

    @property
    def store(self) -> Path:
        return self.root / "data" / "prepared"

    @property
    def models(self) -> Path:
        return self.root / "data" / "models"

    @property
    def evals(self) -> Path:
        return self.root / "data" / "eval"

    @property
    def released(self) -> Path:
        """Released weights converted by `srpipe import --released` (the cache `evaluate --released` fills)."""
        return self.root / "data" / "released"

    @property
    def leaderboard(self) -> Path:
        return self.root / "leaderboard"

    def weights(self, model: str, scale: int) -> Path:
        return self.models / f"{model}_x{scale}.pt"

    def eval_json(self, model: str, scale: int) -> Path:
        return self.evals / f"{model}_x{scale}.json"

    def eval_images(self, model: str, scale: int) -> Path:
        return self.evals / "images" / f"{model}_x{scale}"

    def released_json(self, name: str) -> Path:
        return self.evals / f"released_{name}.json"


def checkpoint_for(weights: Path) -> Path:
    """The resumable checkpoint of a training that writes `weights`: data/models/x.pt → data/checkpoints/x.ckpt."""
    return Path(weights).parent.parent / "checkpoints" / f"{Path(weights).stem}.ckpt"


@dataclass(frozen=True)
class TrainJob:
    """One training; `init` is the (model, scale) whose weights it starts from (SRGAN ← SRResNet, EDSR x4 ← x2)."""

    model: str
    scale: int
    init: tuple[str, int] | None = None


@dataclass(frozen=True)
class EvalJob:
    """One evaluation; `learned` is False for a network without weights (bicubic)."""

    model: str
    scale: int
    learned: bool = True


@dataclass(frozen=True)
class Plan:
    trainings: tuple[TrainJob, ...]
    evaluations: tuple[EvalJob, ...]
    released: tuple[str, ...]

    def waves(self) -> list[list[TrainJob]]:
        """Trainings in the order they can run: from scratch, then those initialised from a first-wave result."""
        return [[j for j in self.trainings if j.init is None], [j for j in self.trainings if j.init is not None]]


def plan(p: PipelineParams) -> Plan:
    """The jobs `p` asks for. Raises KeyError for an unknown model, ValueError for an unsupported scale (before any
    work)."""
    from srpipe.models import get_card

    p.check_models()
    trainings = [TrainJob(m, s) for m, s in p.jobs()]
    trainings += [TrainJob(m, s, (init, s)) for m, s, init in p.finetuned()]
    trainings += [TrainJob(m, s, (m, init_scale)) for m, s, init_scale in p.cross_scaled()]
    evaluations = [EvalJob(m, s, get_card(m).learned) for m, s in p.evaluated()]
    return Plan(tuple(trainings), tuple(evaluations), tuple(p.released))


def run_key(params: Params, root: Path = Path()) -> str:
    """The key of one pipeline execution's MLflow run (same params and code = same run): the flow and every
    `dvc repro` stage process nest their runs under it."""
    from srpipe.provenance import git_commit

    return f"{params.digest()}-{git_commit(root)[:12] or 'nogit'}"

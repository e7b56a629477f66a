"""dvc.yaml held against the code (issue 13): a stage `dvc repro` calls up to date must be one whose code and params
did not change, and it must agree with `srpipe run` on which params make a training stale.

Stages are expanded by DVC itself (foreach/matrix) once per committed profile (params*.yaml, read through
`load_params` so sections a profile leaves to their defaults still expand), so the generators only
params-paper.yaml fills (extra, cross_scale) are checked too. Every cmd is `srpipe <command> ...`.

Code: every stage depends on its command's manifest (data/code/<command>.txt, written by the `code` stage from the
import graph: srpipe.codedeps, pinned by tests/test_codedeps.py) and on no source file directly.

Params: a training's are exactly the train.* fields its cache key depends on (`key_params`); every stage's must name
a section or field of `srpipe.config.Params`, so a typo fails.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from srpipe.cli import main
from srpipe.config import ModelParams, Params, TrainParams, load_params
from srpipe.plan import Layout

ROOT = Path(__file__).resolve().parents[1]
PROFILES = sorted(ROOT.glob("params*.yaml"))


@dataclass(frozen=True)
class Stage:
    name: str  # DVC's, e.g. train@srcnn-4
    argv: tuple[str, ...]
    deps: tuple[str, ...]
    params: tuple[str, ...]  # keys in params.yaml; another file's as "<file>:<key>"
    profile: Path

    @property
    def group(self) -> str:
        return self.name.split("@")[0]

    def option(self, flag: str) -> str:
        return self.argv[self.argv.index(flag) + 1]


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory) -> list[Stage]:
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    found = []
    for profile in PROFILES:
        wdir = tmp_path_factory.mktemp(profile.stem)
        shutil.copy(ROOT / "dvc.yaml", wdir / "dvc.yaml")
        values = json.loads(json.dumps(dataclasses.asdict(load_params(profile)), default=str))
        (wdir / "params.yaml").write_text(yaml.safe_dump(values), encoding="utf-8")
        with Repo.init(wdir, no_scm=True) as repo:
            for s in repo.index.stages:
                params = [
                    key if d.def_path == "params.yaml" else f"{d.def_path}:{key}"
                    for d in s.deps
                    if isinstance(d, ParamsDependency)
                    for key in d.params
                ]
                deps = [d.def_path for d in s.deps if not isinstance(d, ParamsDependency)]
                found.append(Stage(s.name, tuple(shlex.split(s.cmd)), tuple(deps), tuple(params), profile))
    return found


def test_every_stage_is_expanded_and_runs_srpipe(stages: list[Stage]) -> None:
    """A generator no profile fills would escape every check below."""
    declared = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    assert set(declared) == {s.group for s in stages}
    assert [s.name for s in stages if s.argv[0] != "srpipe"] == []


# --- code deps ---------------------------------------------------------------------------------------------------


def test_each_stage_depends_on_its_commands_code_manifest(stages: list[Stage]) -> None:
    """An edit to code a stage runs must make `dvc repro` rerun it: through the manifest of its command (the files
    srpipe.codedeps finds it runs, tests/test_codedeps.py), which the `code` stage rebuilds from the whole package.
    A per-file srpipe/ dep would grow dvc.lock again; a manifest of another command would rerun it for nothing."""
    at = Layout()

    def wrong(s: Stage) -> set[str]:
        if s.group == "code":
            return set() if s.deps == ("srpipe",) and s.argv[1] == "manifest" else {f"deps {s.deps}, {s.argv}"}
        want = at.code_manifest(s.argv[1]).as_posix()
        code = {d for d in s.deps if d.startswith(("srpipe", at.code.as_posix()))}
        return {f"code deps {sorted(code)} != [{want}]"} if code != {want} else set()

    assert not (report := _by_stage(stages, wrong)), "code deps:\n" + report


def test_the_code_stage_writes_every_manifest_the_stages_read(stages: list[Stage], tmp_path: Path) -> None:
    [code] = {s.argv for s in stages if s.group == "code"}
    assert Path(code[code.index("--out") + 1]) == Layout().code
    main(["manifest", "--out", str(tmp_path)])
    written = {p.name for p in tmp_path.iterdir()}
    assert {f"{s.argv[1]}.txt" for s in stages if s.group != "code"} <= written


def _by_stage(stages: list[Stage], problems: Callable[[Stage], set[str]]) -> str:
    """One line per dvc.yaml stage naming its generated stages' problems; empty when there are none."""
    found: dict[str, set[str]] = {}
    for s in stages:
        found.setdefault(s.group, set()).update(problems(s))
    return "\n".join(f"{group}: {', '.join(sorted(p))}" for group, p in sorted(found.items()) if p)


# --- params ------------------------------------------------------------------------------------------------------


class _Changed:
    """A stand-in field value every check accepts (all comparisons hold) and that hashes unlike any params value."""

    def __eq__(self, other: object) -> bool:
        return True

    __ge__ = __gt__ = __le__ = __lt__ = __eq__
    __hash__ = object.__hash__

    def __str__(self) -> str:
        return "<changed>"


def key_params(train: TrainParams, model: str, scale: int) -> set[str]:
    """The train.* params the flow's training cache key depends on, found by changing each and watching the key.

    The key is `result_key(resolve(model, scale, p.train), p.train)` (flows/pipeline.py; the data and init-weights
    digests it adds are deps). A change `resolve` or the params' own checks reject counts as a dependency: the safe
    side. Listing exactly these (not the whole `train` section, which would retrain every model when one model's entry
    changes) makes `dvc repro` and `srpipe run` retrain the same stages.
    """
    from srpipe.train.spec import resolve, result_key

    def key(change: dict[str, typing.Any]) -> str | None:
        try:
            changed = dataclasses.replace(train, **change)
            return result_key(resolve(model, scale, changed), changed)
        except (TypeError, ValueError):
            return None

    base = key({})
    assert base is not None
    found = {
        f"train.{f.name}"
        for f in dataclasses.fields(TrainParams)
        if f.name != "models" and key({f.name: _Changed()}) != base
    }
    own = dataclasses.replace(train.for_model(model), iterations=resolve(model, scale, train).iterations + 1)
    if key({"models": {**train.models, model: own}}) != base:
        found.add(f"train.models.{model}")
    if key({"models": {**train.models, f"not_{model}": ModelParams(iterations=1)}}) != base:
        found.add("train.models")
    return found


def test_training_params_are_the_cache_key_fields(stages: list[Stage]) -> None:
    def mismatch(s: Stage) -> set[str]:
        if s.argv[1] != "train":
            return set()
        model = s.option("--model")
        expected = key_params(load_params(s.profile).train, model, int(s.option("--scale")))
        listed = set(s.params)
        found = {f"missing {k}" for k in expected - listed} | {f"extra {k}" for k in listed - expected}
        return {p.replace(f"train.models.{model}", "train.models.<model>") for p in found}

    assert not (report := _by_stage(stages, mismatch)), "training params differ from the cache key's:\n" + report


def _is_param(key: str) -> bool:
    """Whether a dotted params.yaml key names a section or field of `Params` (a mapping's entries by any name)."""
    tp: typing.Any = Params
    for part in key.split("."):
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        if tp is typing.Any:
            return True
        if dataclasses.is_dataclass(tp):
            hints = typing.get_type_hints(tp)
            if part not in hints:
                return False
            tp = hints[part]
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        else:
            return False
    return True


def test_params_name_config_fields(stages: list[Stage]) -> None:
    """A mistyped param would make DVC track a key srpipe never reads (or fail to find it)."""
    report = _by_stage(stages, lambda s: {k for k in s.params if not _is_param(k)})
    assert not report, "params that are no field of srpipe.config.Params:\n" + report


# --- paths ------------------------------------------------------------------------------------------------------------


def test_stage_paths_are_the_layouts(stages: list[Stage]) -> None:
    """dvc.yaml spells for DVC the paths srpipe.plan.Layout gives the flow and the CLI's defaults: one layout."""
    at = Layout()
    wrong = []
    for s in stages:
        want: dict[str, Path] = {"--raw": at.raw, "--store": at.store, "--eval-dir": at.evals}
        if s.argv[1] == "train":
            want["--out"] = at.weights(s.option("--model"), int(s.option("--scale")))
        elif s.argv[1] == "prepare":
            want["--out"] = at.store
        elif s.argv[1] == "leaderboard":
            want["--out"] = at.leaderboard
        elif s.argv[1] == "evaluate" and "--released" in s.argv:
            want |= {"--json": at.released_json(s.option("--released")), "--released-cache": at.released}
        elif s.argv[1] == "evaluate":
            model, scale = s.option("--model"), int(s.option("--scale"))
            want |= {"--json": at.eval_json(model, scale), "--save-images": at.eval_images(model, scale)}
            want |= {"--weights": at.weights(model, scale)}
        wrong += [
            f"{s.name} {flag} {s.option(flag)} != {path}"
            for flag, path in want.items()
            if flag in s.argv and Path(s.option(flag)) != path
        ]
        if "--init" in s.argv and Path(s.option("--init")).parent != at.models:
            wrong.append(f"{s.name} --init {s.option('--init')} is not under {at.models}")
    assert wrong == []

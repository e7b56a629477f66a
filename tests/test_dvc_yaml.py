"""dvc.yaml held against the code (issue 13): a stage `dvc repro` calls up to date must be one whose code and params
did not change, and it must agree with `srpipe run` on which params make a training stale.

Stages are expanded by DVC itself (foreach/matrix) once per committed profile (params*.yaml, read through
`load_params` so sections a profile leaves to their defaults still expand), so the generators only
params-paper.yaml fills (extra, cross_scale) are checked too. Every cmd is `srpipe <command> ...`.

Code a command runs, from the import graph (AST, no imports executed):
- roots: cli.py, its module-level imports, and the imports inside the cli.py functions that `main`, `build_parser`
  and the command's handler reach by name (cli.py hosts every command: the other handlers are not followed);
- from there every `import` anywhere in an srpipe module (function-level lazy ones too), transitively; importing
  `a.b.c` also runs `a` and `a.b`, so their `__init__.py` count unless they hold nothing but a docstring;
- package data: a non-Python file under srpipe/ counts when a reached module has a string literal that is its name
  or ends in "/<name>" (catalog.py's "catalog.yaml").
Each such file must be covered by a dep (the file or a folder above it), and each srpipe/ dep must cover one of them.

Params: a training's are exactly the train.* fields its cache key depends on (`key_params`); every stage's must name
a section or field of `srpipe.config.Params`, so a typo fails.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import json
import shlex
import shutil
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest
import yaml

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


@functools.cache
def _modules() -> dict[str, Path]:
    """Dotted name → file of every srpipe module."""
    found = {}
    for path in (ROOT / "srpipe").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


@functools.cache
def _tree(name: str) -> ast.Module:
    return ast.parse(_modules()[name].read_text(encoding="utf-8"))


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The srpipe modules one import statement in `module` runs, parent packages included."""
    mods = _modules()
    if isinstance(node, ast.Import):
        names = {alias.name for alias in node.names}
    else:
        base = node.module or ""
        if node.level:
            package = module if mods[module].name == "__init__.py" else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}" if node.module else package
        names = {f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names}
    parts = [name.split(".") for name in names]
    return {".".join(p[:i]) for p in parts for i in range(1, len(p) + 1) if ".".join(p[:i]) in mods}


def _imports(module: str, node: ast.AST, skip_functions: bool = False) -> set[str]:
    found = set()
    todo = [node]
    while todo:
        n = todo.pop()
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            found |= _imported(module, n)
        if not (skip_functions and isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            todo.extend(ast.iter_child_nodes(n))
    return found


def _cli_roots(command: str) -> set[str]:
    tree = _tree("srpipe.cli")
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    handlers = {  # build_parser's add("train", cmd_train, ...)
        call.args[0].value: call.args[1].id
        for call in ast.walk(functions["build_parser"])
        if isinstance(call, ast.Call)
        and len(call.args) >= 2
        and isinstance(call.args[0], ast.Constant)
        and isinstance(call.args[1], ast.Name)
        and call.args[1].id in functions
    }
    assert command in handlers, f"srpipe {command}: no such command in cli.py"
    others = set(handlers.values()) - {handlers[command]}
    roots = _imports("srpipe.cli", tree, skip_functions=True)
    todo, seen = ["main", "build_parser", handlers[command]], set()
    while todo:
        name = todo.pop()
        if name in seen or name in others:
            continue
        seen.add(name)
        roots |= _imports("srpipe.cli", functions[name])
        todo += [n.id for n in ast.walk(functions[name]) if isinstance(n, ast.Name) and n.id in functions]
    return roots


def _runs_code(module: str) -> bool:
    return not all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in _tree(module).body)


@functools.cache
def required_files(command: str) -> frozenset[str]:
    """Every srpipe file (posix, from the project root) `srpipe <command>` may execute or read."""
    reached, todo = {"srpipe.cli"}, list(_cli_roots(command))
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo += _imports(module, _tree(module))
    data = [p for p in (ROOT / "srpipe").rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")]
    files = {_modules()[m] for m in reached if _runs_code(m)}
    for module in reached:
        strings = {n.value for n in ast.walk(_tree(module)) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        files |= {p for p in data if any(s == p.name or s.endswith(f"/{p.name}") for s in strings)}
    return frozenset(p.relative_to(ROOT).as_posix() for p in files)


def _covers(dep: str, file: str) -> bool:
    d, f = PurePosixPath(dep), PurePosixPath(file)
    return d == f or d in f.parents


def _by_stage(stages: list[Stage], problems: Callable[[Stage], set[str]]) -> str:
    """One line per dvc.yaml stage naming its generated stages' problems; empty when there are none."""
    found: dict[str, set[str]] = {}
    for s in stages:
        found.setdefault(s.group, set()).update(problems(s))
    return "\n".join(f"{group}: {', '.join(sorted(p))}" for group, p in sorted(found.items()) if p)


def test_deps_cover_the_code_each_stage_runs(stages: list[Stage]) -> None:
    """An edit to code a stage runs must make `dvc repro` rerun it."""

    def missing(s: Stage) -> set[str]:
        return {f for f in required_files(s.argv[1]) if not any(_covers(d, f) for d in s.deps)}

    assert not (report := _by_stage(stages, missing)), "deps missing code the stage runs:\n" + report


def test_code_deps_are_code_the_stage_runs(stages: list[Stage]) -> None:
    """A dep on code the stage never reaches reruns it for nothing, or names a file that moved."""

    def dead(s: Stage) -> set[str]:
        needed = required_files(s.argv[1])
        return {d for d in s.deps if d.startswith("srpipe/") and not any(_covers(d, f) for f in needed)}

    assert not (report := _by_stage(stages, dead)), "srpipe deps the stage does not run:\n" + report


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

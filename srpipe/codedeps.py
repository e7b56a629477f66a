"""The code each `srpipe` command runs, read from the import graph (nothing is imported), and its manifest.

Why: a pipeline stage must rerun when code it runs changes, and only then. dvc.yaml used to list each stage's ~30
source files as deps, which made dvc.lock 160 KB — and DVC re-reads and rewrites that file in round-trip (pure
Python) YAML after every stage: ~0.9 s per stage, a third of the main job's overhead (benches/bench_pipeline.py).
Now one stage (`srpipe manifest`, dvc.yaml's `code`) depends on the whole package and writes one manifest per
command, `data/code/<command>.txt`: the sha256 and path of every file the command may execute or read. Each stage
depends on its command's manifest. An edit reruns the `code` stage (a fraction of a second), the manifests of the
commands that do not run the edited file come out byte for byte the same, and DVC skips their stages as before;
`dvc status` names the edited file under `code`, and the stages it makes stale once `code` has run. `srpipe run`
keys its Prefect caches on the same digests, so both orchestrators rerun the same work after an edit.

The files of `srpipe <command>`:
- roots: cli.py, its module-level imports, and the imports inside the cli.py functions that `main`, `build_parser`
  and the command's handler reach by name (cli.py hosts every command: the other handlers are not followed);
- from there every `import` anywhere in a package module (function-level lazy ones too), transitively; importing
  `a.b.c` also runs `a` and `a.b`, so their `__init__.py` count unless they hold nothing but a docstring;
- package data: a non-Python file in the package counts when a reached module has a string literal that is its
  name or ends in "/<name>" (catalog.py's "catalog.yaml").
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

from srpipe.fsio import write_text

PACKAGE = "srpipe"
ROOT = Path(__file__).resolve().parents[1]  # the folder holding the package: a checkout, or site-packages


class ImportGraph:
    """The modules of one package under `root` and the imports between them."""

    def __init__(self, root: Path = ROOT, package: str = PACKAGE) -> None:
        self.root, self.package = root, package
        self.modules: dict[str, Path] = {}  # dotted name -> file
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            self.modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    @functools.cache  # noqa: B019 - one graph per process and root, parsed once
    def tree(self, module: str) -> ast.Module:
        return ast.parse(self.modules[module].read_text(encoding="utf-8"))

    def _imported(self, module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
        """The package modules one import statement in `module` runs, parent packages included."""
        mods = self.modules
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

    def imports(self, module: str, node: ast.AST, skip_functions: bool = False) -> set[str]:
        found = set()
        todo = [node]
        while todo:
            n = todo.pop()
            if isinstance(n, (ast.Import, ast.ImportFrom)):
                found |= self._imported(module, n)
            if not (skip_functions and isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
                todo.extend(ast.iter_child_nodes(n))
        return found

    def _cli(self) -> tuple[dict[str, ast.FunctionDef], dict[str, str]]:
        """cli.py's functions, and each command's handler (build_parser's `add("train", cmd_train, ...)`)."""
        tree = self.tree(f"{self.package}.cli")
        functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        handlers = {
            call.args[0].value: call.args[1].id
            for call in ast.walk(functions["build_parser"])
            if isinstance(call, ast.Call)
            and len(call.args) >= 2
            and isinstance(call.args[0], ast.Constant)
            and isinstance(call.args[1], ast.Name)
            and call.args[1].id in functions
        }
        return functions, handlers

    def commands(self) -> list[str]:
        return sorted(self._cli()[1])

    def _roots(self, command: str) -> set[str]:
        functions, handlers = self._cli()
        if command not in handlers:
            raise KeyError(f"srpipe {command}: no such command (commands: {', '.join(sorted(handlers))})")
        cli = f"{self.package}.cli"
        others = set(handlers.values()) - {handlers[command]}
        roots = self.imports(cli, self.tree(cli), skip_functions=True)
        todo, seen = ["main", "build_parser", handlers[command]], set()
        while todo:
            name = todo.pop()
            if name in seen or name in others:
                continue
            seen.add(name)
            roots |= self.imports(cli, functions[name])
            todo += [n.id for n in ast.walk(functions[name]) if isinstance(n, ast.Name) and n.id in functions]
        return roots

    def _runs_code(self, module: str) -> bool:
        return not all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in self.tree(module).body)

    @functools.cache  # noqa: B019
    def files(self, command: str) -> tuple[str, ...]:
        """Every package file (posix, from `root`) `srpipe <command>` may execute or read, sorted."""
        reached, todo = {f"{self.package}.cli"}, list(self._roots(command))
        while todo:
            module = todo.pop()
            if module not in reached:
                reached.add(module)
                todo += self.imports(module, self.tree(module))
        data = [
            p
            for p in (self.root / self.package).rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
        ]
        files = {self.modules[m] for m in reached if self._runs_code(m)}
        for module in reached:
            tree = self.tree(module)
            strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
            files |= {p for p in data if any(s == p.name or s.endswith(f"/{p.name}") for s in strings)}
        return tuple(sorted(p.relative_to(self.root).as_posix() for p in files))

    def manifest(self, command: str) -> str:
        """`<sha256>  <path>` per file `srpipe <command>` runs (sha256sum's format: `sha256sum -c` checks it)."""
        lines = [f"{hashlib.sha256((self.root / f).read_bytes()).hexdigest()}  {f}\n" for f in self.files(command)]
        return "".join(lines)


@functools.cache
def package_graph() -> ImportGraph:
    """srpipe's own graph, parsed once per process."""
    return ImportGraph()


def digest(command: str, graph: ImportGraph | None = None) -> str:
    """One sha256 for the code `srpipe <command>` runs: the digest of its manifest."""
    return hashlib.sha256((graph or package_graph()).manifest(command).encode()).hexdigest()


def cache_key(command: str, *_context_and_inputs: object) -> str:
    """`digest(command)` in the shape of a Prefect cache-key function (task context, inputs): flows/pipeline.py keys
    each cached task on the code its stage's command runs."""
    return digest(command)


def write_manifests(out: Path, commands: list[str] | None = None, graph: ImportGraph | None = None) -> dict[str, str]:
    """Write `out/<command>.txt` for each command (default: every command of the CLI); returns command -> digest.

    A manifest is rewritten only when its content changed, so its timestamp says when its code last did."""
    g = graph or package_graph()
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for command in commands or g.commands():
        text = g.manifest(command)
        path = out / f"{command}.txt"
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            write_text(path, text)
        written[command] = hashlib.sha256(text.encode()).hexdigest()
    return written

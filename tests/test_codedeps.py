"""srpipe.codedeps: the files a command runs, read from the import graph, and the manifests DVC's stages depend on
(an edit changes exactly the manifests of the commands that run the edited file)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from srpipe.codedeps import ImportGraph, write_manifests

# A package laid out like srpipe: cli.py's build_parser registers each command's handler with add("name", handler).
TOY = {
    "__init__.py": '"""Only a docstring: importing the package runs nothing of it."""\n',
    "cli.py": """
        from toy import base


        def cmd_a(args):
            from toy.sub.thing import run  # lazy, inside the handler

            return helper(run)


        def cmd_b(args):
            from toy import only_b

            return only_b


        def helper(x):
            return x


        def build_parser():
            add("a", cmd_a, "help")
            add("b", cmd_b, "help")


        def main():
            return build_parser()
        """,
    "base.py": "VALUE = 1\n",
    "only_b.py": "B = 2\n",
    "unused.py": "import toy.base\n",
    "sub/__init__.py": "from toy import base  # runs code: counts\n",
    "sub/thing.py": "from ..reader import read\n\ndef run():\n    return read()\n",
    "reader.py": 'NAME = "files/catalog.yaml"\n\ndef read():\n    return open(NAME).read()\n',
    "files/catalog.yaml": "a: 1\n",
    "files/other.yaml": "b: 2\n",
}


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    for name, text in TOY.items():
        path = tmp_path / "toy" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return tmp_path


def test_a_commands_files_follow_its_handler_lazy_and_relative_imports_and_named_data(toy: Path) -> None:
    g = ImportGraph(toy, "toy")
    assert g.commands() == ["a", "b"]
    assert g.files("a") == (
        "toy/base.py",  # cli.py's module-level import
        "toy/cli.py",
        "toy/files/catalog.yaml",  # named by a string in a reached module
        "toy/reader.py",  # a relative import two levels up
        "toy/sub/__init__.py",  # importing toy.sub.thing runs toy.sub first
        "toy/sub/thing.py",  # imported inside cmd_a
    )  # not toy/__init__.py (a docstring), only_b.py (another handler's), unused.py, files/other.yaml
    assert g.files("b") == ("toy/base.py", "toy/cli.py", "toy/only_b.py")
    with pytest.raises(KeyError, match="no such command"):
        g.files("c")


def test_a_manifest_changes_exactly_when_a_file_its_command_runs_does(toy: Path, tmp_path: Path) -> None:
    out = tmp_path / "code"
    first = write_manifests(out, graph=ImportGraph(toy, "toy"))
    manifest = (out / "a.txt").read_text()
    lines = manifest.splitlines()
    assert [line.split("  ")[1] for line in lines] == list(ImportGraph(toy, "toy").files("a"))
    for line in lines:  # sha256sum's format: `sha256sum -c` checks it
        digest, path = line.split("  ")
        assert digest == hashlib.sha256((toy / path).read_bytes()).hexdigest()
    assert first["a"] == hashlib.sha256(manifest.encode()).hexdigest()

    b_before = (out / "b.txt").stat().st_mtime_ns
    (toy / "toy" / "reader.py").write_text((toy / "toy" / "reader.py").read_text() + "# edited\n")
    (toy / "toy" / "unused.py").write_text("# edited: no command runs it\n")
    second = write_manifests(out, graph=ImportGraph(toy, "toy"))  # a new graph: files are read again
    assert second["a"] != first["a"] and second["b"] == first["b"]
    assert (out / "b.txt").stat().st_mtime_ns == b_before  # rewritten only when its content changes


def test_srpipe_commands_run_their_own_stage_and_not_the_others() -> None:
    g = ImportGraph()
    train, board = set(g.files("train")), set(g.files("leaderboard"))
    assert {"srpipe/stages/train.py", "srpipe/train/loop.py", "srpipe/models/edsr.py", "srpipe/cli.py"} <= train
    assert "srpipe/data/released.yaml" in train  # package data the released catalog reads by name
    assert "srpipe/stages/leaderboard.py" in board and "srpipe/train/loop.py" not in board
    assert "srpipe/stages/leaderboard.py" not in train


def test_the_code_stage_imports_nothing_heavy(tmp_path: Path) -> None:
    """`srpipe manifest` runs before every `dvc repro` after an edit: it must cost a fraction of a second."""
    probe = (
        "import sys\n"
        "from srpipe.cli import main\n"
        f"assert main(['-q', 'manifest', '--out', {str(tmp_path)!r}]) == 0\n"
        "print(sorted(m for m in ('torch', 'mlflow', 'numpy', 'pandas', 'PIL', 'prefect') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert (tmp_path / "train.txt").is_file()

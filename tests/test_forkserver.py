"""srpipe.forkserver: a served command behaves as the same command run in its own process — output, exit status,
working directory, environment, Ctrl-C — its child dies with it, and a server that cannot be used costs nothing."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from srpipe import forkserver

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fork and Unix sockets")


@pytest.fixture
def fs_dir(tmp_path: Path) -> Iterator[Path]:
    """A private runtime folder; every server started in it is stopped afterwards."""
    d = tmp_path / "fs"
    yield d
    for pid_file in d.glob("*.pid"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGTERM)


@pytest.fixture
def server(fs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """A server for the commands `_env(fs_dir)` runs, started and answering: its pid."""
    for k, v in _env(fs_dir).items():
        monkeypatch.setenv(k, v)
    forkserver.start(wait=True).close()
    return _server_pid(fs_dir)


def _served(fs_dir: Path) -> list[str]:
    """The commands the server's log says it forked, in order."""
    [log] = fs_dir.glob("*.log")
    lines = log.read_text().splitlines()
    return [line.split(": ", 2)[2].removeprefix("srpipe ") for line in lines if line.startswith("forkserver: served ")]


def _env(fs_dir: Path, on: str = "1", **extra: str) -> dict[str, str]:
    env = {**os.environ, forkserver.ENV: on, forkserver.DIR_ENV: str(fs_dir), "SRPIPE_FORKSERVER_IDLE": "20"}
    env.pop(forkserver.CHILD_ENV, None)
    return env | extra


def _srpipe(*args: str, cwd: Path, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "srpipe", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _server_pid(fs_dir: Path) -> int:
    [pid_file] = fs_dir.glob("*.pid")
    return int(pid_file.read_text())


def _children(pid: int) -> list[int]:
    import psutil

    return [c.pid for c in psutil.Process(pid).children() if c.status() != psutil.STATUS_ZOMBIE]


def test_a_served_command_matches_the_same_command_in_its_own_process(
    tmp_path: Path, fs_dir: Path, server: int
) -> None:
    served = _srpipe("download", "--dataset", "sample", "--raw", "raw", cwd=tmp_path, env=_env(fs_dir))
    assert served.returncode == 0, served.stderr
    assert "sample:" in served.stderr and "done:" in served.stderr  # its log reached this command's stderr
    own = tmp_path / "own"
    own.mkdir()
    alone = _srpipe("download", "--dataset", "sample", "--raw", "raw", cwd=own, env=_env(fs_dir, on="0"))
    assert alone.returncode == 0, alone.stderr
    files = {p.relative_to(tmp_path / "raw") for p in (tmp_path / "raw").rglob("*.png")}
    assert files and files == {p.relative_to(own / "raw") for p in (own / "raw").rglob("*.png")}  # cwd followed
    # The status and message of a failing command, and an environment variable of this command (SRPIPE_DEBUG:
    # the traceback instead of one line), reach the child.
    bad = ("train", "--model", "no_such_net", "--scale", "4")
    failed = _srpipe(*bad, cwd=tmp_path, env=_env(fs_dir))
    assert failed.returncode == 2 and "unknown model 'no_such_net'" in failed.stderr
    assert "Traceback" not in failed.stderr
    debug = _srpipe(*bad, cwd=tmp_path, env=_env(fs_dir, SRPIPE_DEBUG="1"))
    assert debug.returncode != 0 and "Traceback" in debug.stderr
    assert _server_pid(fs_dir) == server, "every command was served by the one server"
    assert _served(fs_dir) == ["download --dataset sample --raw raw", *[" ".join(bad)] * 2]


def test_the_first_command_starts_a_server_and_does_not_wait_for_it(tmp_path: Path, fs_dir: Path) -> None:
    """No server answering: the command runs in its own process (its imports cost less than the server's preload)
    while a server starts in the background for the next ones; a second command meanwhile starts no other."""
    first = _srpipe("download", "--dataset", "sample", "--raw", "raw", cwd=tmp_path, env=_env(fs_dir))
    assert first.returncode == 0, first.stderr
    again = _srpipe("download", "--dataset", "sample", "--raw", "raw", cwd=tmp_path, env=_env(fs_dir))
    assert again.returncode == 0, again.stderr
    _wait_for(lambda: any(fs_dir.glob("*.pid")))
    pid = _server_pid(fs_dir)
    assert _served(fs_dir) == []
    third = _srpipe("download", "--dataset", "sample", "--raw", "raw", cwd=tmp_path, env=_env(fs_dir))
    assert third.returncode == 0, third.stderr
    assert _served(fs_dir) == ["download --dataset sample --raw raw"] and _server_pid(fs_dir) == pid


def _long_training(tmp_path: Path, store_dir: Path) -> list[str]:
    params = {
        "tracking": {"uri": ""},
        "train": {"config": "tiny", "iterations": 100000, "val_every": 100000, "ckpt_every": 5, "log_every": 5,
                  "workers": 0, "precision": "fp32",
                  "recipe": {"batch_size": 2, "patch_size": 32, "lr": 1e-3, "optimizer": "adam"}},
    }  # fmt: skip
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return [
        "train",
        "--model",
        "srcnn",
        "--scale",
        "2",
        "--store",
        str(store_dir),
        "--out",
        "data/models/m.pt",
        "--no-progress",
    ]


def _wait_for(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_ctrl_c_reaches_the_served_command(tmp_path: Path, fs_dir: Path, store_dir: Path, server: int) -> None:
    argv = _long_training(tmp_path, store_dir)
    cmd = [sys.executable, "-m", "srpipe", *argv]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=_env(fs_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for(lambda: any(tmp_path.glob("data/checkpoints/*.ckpt")) or proc.poll() is not None)  # under way
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "training interrupted" in err and "run the same command again to resume" in err


def test_a_killed_command_takes_its_served_child_with_it(
    tmp_path: Path, fs_dir: Path, store_dir: Path, server: int
) -> None:
    pytest.importorskip("psutil")
    argv = _long_training(tmp_path, store_dir)
    cmd = [sys.executable, "-m", "srpipe", *argv]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env(fs_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: any(tmp_path.glob("data/checkpoints/*.ckpt")) or proc.poll() is not None)
        assert len(_children(server)) == 1
    finally:
        proc.kill()  # SIGKILL: no chance to forward anything
        proc.wait()
    _wait_for(lambda: not _children(server), timeout=10)


def test_a_killed_server_takes_its_children_and_fails_their_commands(
    tmp_path: Path, fs_dir: Path, store_dir: Path, server: int
) -> None:
    pytest.importorskip("psutil")
    import psutil

    argv = _long_training(tmp_path, store_dir)
    cmd = [sys.executable, "-m", "srpipe", *argv]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=_env(fs_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for(lambda: any(tmp_path.glob("data/checkpoints/*.ckpt")) or proc.poll() is not None)
        [child] = _children(server)
        os.kill(server, signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 1 and "fork server stopped" in err
    _wait_for(lambda: not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE, 10)


def test_an_unusable_runtime_folder_runs_the_command_in_its_own_process(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the runtime folder should be")
    result = _srpipe("download", "--dataset", "sample", "--raw", "raw", cwd=tmp_path, env=_env(blocker))
    assert result.returncode == 0, result.stderr
    assert "fork server not used" in result.stderr and any((tmp_path / "raw").rglob("*.png"))


@pytest.mark.parametrize(
    ("command", "env", "params_flag", "expected"),
    [
        ("train", {}, True, True),
        ("train", {}, False, False),
        ("train", {forkserver.ENV: "1"}, False, True),
        ("train", {forkserver.ENV: "0"}, True, False),
        ("run", {}, True, False),  # the Prefect flow is one process already
        ("models", {}, True, False),
        ("train", {"LOCAL_RANK": "0"}, True, False),  # a torchrun rank is its own process
        ("train", {forkserver.CHILD_ENV: "1"}, True, False),  # already served: never delegate again
    ],
)
def test_which_commands_are_served(
    command: str, env: dict[str, str], params_flag: bool, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in (forkserver.ENV, forkserver.CHILD_ENV, "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert forkserver.wanted(command, lambda: params_flag) is expected


def test_the_runtime_folder_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(forkserver.DIR_ENV, str(tmp_path / "rt"))
    assert forkserver.runtime_dir().stat().st_mode & 0o777 == 0o700
    (tmp_path / "rt").chmod(0o755)
    with pytest.raises(PermissionError, match="open to other users"):
        forkserver.runtime_dir()


def test_the_server_key_follows_the_interpreter_path_and_thread_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    base = forkserver.server_key()
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    assert forkserver.server_key() != base
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    assert forkserver.server_key() != base


def test_the_client_hands_over_before_importing_anything_heavy() -> None:
    """The client's whole job is to read params and pass the command on: importing torch there (1.3-2.4 s on a
    2-core VM, measured when config.py's protocol check imported srpipe.protocols) costs what the server saves."""
    code = (
        "import sys\n"
        "from srpipe import cli, forkserver\n"
        "heavy = {'torch', 'mlflow', 'numpy', 'pandas', 'pyarrow', 'PIL', 'prefect'}\n"
        "loaded = lambda: ','.join(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
        "forkserver.delegate = lambda argv: print(loaded()) or 0\n"
        "sys.argv = ['srpipe', 'train', '--model', 'srcnn', '--scale', '2']\n"
        "sys.exit(cli.main())\n"
    )
    env = {**os.environ, forkserver.ENV: "1"}
    env.pop(forkserver.CHILD_ENV, None)
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"imported before handing over: {proc.stdout.strip()}"

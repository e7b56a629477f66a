"""A fork server for `srpipe` commands: heavy libraries imported once, each command run in a fresh forked child.

Why: `dvc repro` runs every stage as a new `srpipe` process, and on a 2-core machine each paid ~3.5 s before its
first step — importing torch (1.1 s), MLflow (1.3 s) and torch._dynamo (0.8 s, which `torch.optim` and the FLOP
counter pull in), numpy/pandas/pyarrow/PIL — about 150 s of an 830-s main job of 42 stages (benches/bench_pipeline.py).

How: the first command that may use it starts a server (`python -m srpipe.forkserver SOCKET`) in its own session.
The server imports only third-party libraries (never srpipe, so an edit to srpipe is always seen), then waits on a
Unix socket. A command connects, passes its argv, working directory, environment, umask and its stdin/stdout/stderr
descriptors (SCM_RIGHTS), and the server forks a child that becomes that command: same descriptors (progress bars
still see a terminal), same environment, srpipe imported fresh from disk. The command forwards the signals it gets
(Ctrl-C, SIGTERM) to the child and exits with the child's status; if the command itself dies, the server kills the
child. The server is single-threaded (forking a threaded process can copy a held lock), serves any number of
commands at once, and exits after `IDLE_S` seconds without one. A command that finds no server answering starts one
in the background and runs in its own process: its own imports (~3.5 s) cost less than waiting for the server's
preload (~6 s), which then overlaps the first stages instead of delaying them.

Off unless asked for: `orchestration.forkserver: true` in params.yaml, or SRPIPE_FORKSERVER=1 (=0 switches it off
whatever params say). Not used under torchrun (each rank must be its own process) or for `srpipe run` (the Prefect
flow is one process already). Anything that stops the server from being used — no Unix sockets, an unwritable runtime
folder, a server that does not answer — falls back to running the command in-process, with a warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

ENV = "SRPIPE_FORKSERVER"  # "1" on, "0" off; unset = params' orchestration.forkserver
DIR_ENV = "SRPIPE_FORKSERVER_DIR"  # where sockets and server logs live (default: a private folder in the temp dir)
CHILD_ENV = "SRPIPE_FORKSERVER_CHILD"  # set in a served command: it never delegates again
IDLE_S = float(os.environ.get("SRPIPE_FORKSERVER_IDLE", "120"))
START_TIMEOUT_S = 60.0
PRELOAD = (
    "numpy",
    "pandas",
    "pyarrow",
    "pyarrow.parquet",
    "PIL.Image",
    "yaml",
    "tqdm",
    "torch",
    "torch._dynamo",  # what torch.optim's first param group and the FLOP counter import (0.8 s)
    "torch.utils.flop_counter",
    "mlflow",
    "mlflow.tracking",
    "mlflow.entities",
    "mlflow.store.tracking.sqlalchemy_store",
    "matplotlib",
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
)
_HEADER = struct.Struct("!I")


def runtime_dir() -> Path:
    """A folder only this user can enter: sockets there cannot be reached by anyone else."""
    d = Path(os.environ.get(DIR_ENV) or Path(tempfile.gettempdir()) / f"srpipe-forkserver-{os.getuid()}")
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    if (d.stat().st_mode & 0o077) or d.stat().st_uid != os.getuid():
        raise PermissionError(f"{d} is open to other users or not ours: not used for the fork server's socket")
    return d


def _stamp(path: str | None) -> str:
    try:
        st = os.stat(path) if path else None
    except OSError:
        return ""
    return f"{path}:{st.st_size}:{st.st_mtime_ns}" if st else ""


def server_key() -> str:
    """What the preloaded server depends on: this interpreter, the libraries it preloads (an upgrade gets a new
    server) and this file; srpipe's other modules are imported fresh in every child, so they are not part of it."""
    from importlib.util import find_spec

    parts = [sys.executable, sys.prefix, sys.version, _stamp(__file__)]
    # What the server's imports read from the environment once: its module path and the OpenMP/MKL thread counts.
    parts += [os.environ.get(k, "") for k in ("PYTHONPATH", "OMP_NUM_THREADS", "MKL_NUM_THREADS")]
    for name in ("torch", "mlflow", "numpy", "pandas"):
        with contextlib.suppress(ImportError, ValueError):
            spec = find_spec(name)
            parts.append(_stamp(spec.origin if spec else None))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------------- client


def _send(sock: socket.socket, payload: dict, fds: list[int] | None = None) -> None:
    data = json.dumps(payload).encode()
    if fds:
        socket.send_fds(sock, [_HEADER.pack(len(data)) + data], fds)
    else:
        sock.sendall(_HEADER.pack(len(data)) + data)


def _recv_exact(sock: socket.socket, n: int, fds: list[int] | None = None) -> bytes:
    buf = b""
    while len(buf) < n:
        if fds is not None and not buf:
            chunk, got, _, _ = socket.recv_fds(sock, n, 3)
            fds.extend(got)
        else:
            chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("the connection closed")
        buf += chunk
    return buf


def _recv(sock: socket.socket, fds: list[int] | None = None) -> dict:
    first = _recv_exact(sock, _HEADER.size, fds)
    (n,) = _HEADER.unpack(first)
    return json.loads(_recv_exact(sock, n))


def _connect(path: Path) -> socket.socket | None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(path))
        return s
    except OSError:
        s.close()
        return None


def _srpipe_root() -> str:
    """The folder holding the srpipe package this command runs (a checkout, or site-packages)."""
    import srpipe

    return str(Path(srpipe.__file__).resolve().parent.parent)


def _spawn(path: Path) -> subprocess.Popen:
    """Start a server for `path` in its own session (it outlives this command); it preloads, then listens."""
    env = {k: v for k, v in os.environ.items() if k != CHILD_ENV}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_srpipe_root(), env.get("PYTHONPATH")) if p)  # finds srpipe
    logfile = open(path.with_suffix(".log"), "ab")  # noqa: SIM115 - handed to the server process
    with logfile:
        return subprocess.Popen(
            [sys.executable, "-m", "srpipe.forkserver", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=logfile,
            stderr=logfile,
            start_new_session=True,  # no terminal signals, and it outlives this command
            close_fds=True,
            cwd=path.parent,  # not the project: its folder must not shadow the srpipe each child imports
            env=env,
        )


def _server_exists(path: Path) -> bool:
    """Whether a server for `path` is alive — preloading, serving or on its way out: it holds the lock file."""
    import fcntl

    with open(path.with_suffix(".lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
        return False


def start(wait: bool = True) -> socket.socket | None:
    """Make sure a server runs for this interpreter and environment. With `wait`, return a connection to it once it
    accepts (its preload takes a few seconds); without, start one unless one is already on its way and return a
    connection only if it answers now."""
    path = runtime_dir() / f"{server_key()}.sock"
    if (s := _connect(path)) is not None:
        return s
    server = None if _server_exists(path) else _spawn(path)
    if not wait:
        return None
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if (s := _connect(path)) is not None:
            return s
        if server is not None and server.poll() is not None:  # it exited: another one took over, or it failed
            deadline = min(deadline, time.monotonic() + 10)
        time.sleep(0.05)
    raise TimeoutError(f"the fork server did not answer on {path} (log: {path.with_suffix('.log')})")


def delegate(argv: list[str], wait: bool = False) -> int | None:
    """Run `srpipe argv` in a child of the fork server; returns its exit status, or None when no server answers
    yet: one is then started in the background for the commands that follow, and this one runs in its own process
    (it would wait longer for the server's preload than for its own imports). With `wait`, it waits for the server.

    Raises OSError/TimeoutError when the server cannot be used, so the caller can run the command itself.
    """
    sock = start(wait)
    if sock is None:
        return None
    with sock:
        header = {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "umask": _umask()}
        header["path0"] = _srpipe_root()  # the srpipe this command would run, imported so by the child
        _send(sock, header, [0, 1, 2])
        child = int(_recv(sock)["pid"])

        def forward(signum: int, _frame: object) -> None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, forward)
        try:
            return int(_recv(sock)["status"])
        except (ConnectionError, ValueError, KeyError):
            forward(signal.SIGKILL, None)  # the server is gone (killed?): its child must not run on unattended
            print("srpipe: the fork server stopped before the command finished", file=sys.stderr)
            return 1


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------------------------------------------------- server


def _die_with_parent() -> None:
    """Linux: SIGKILL this child if the server dies, so no command outlives a killed server unattended."""
    import ctypes
    import ctypes.util

    with contextlib.suppress(OSError, AttributeError, TypeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _become(header: dict, fds: list[int], inherited: list) -> None:
    """In the forked child: turn into the command the client asked for, run it, and exit with its status.

    `inherited` are the server's own files (listening socket, its lock, other clients' connections): closed here."""
    status = 1
    try:
        _die_with_parent()
        signal.set_wakeup_fd(-1)
        for f in inherited:
            f.close()
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in zip((0, 1, 2), fds, strict=True):
            os.dup2(fd, target)
            os.close(fd)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the process's own stdio
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        os.chdir(header["cwd"])
        os.environ.clear()
        os.environ.update(header["env"])
        os.environ[CHILD_ENV] = "1"
        os.umask(int(header["umask"]))
        sys.argv = ["srpipe", *header["argv"]]
        import random

        random.seed()  # a fresh process draws fresh entropy; a fork would repeat the server's state
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()
        for name in [m for m in sys.modules if m == "srpipe" or m.startswith("srpipe.")]:
            del sys.modules[name]  # the command runs the srpipe on disk now, not the one the server started with
        sys.path.insert(0, header["path0"])  # ... and the same one the command would have imported itself
        from srpipe.cli import main

        status = main(header["argv"])
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:
        status = 130
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        import atexit

        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status)


def serve(path: Path) -> None:
    """Preload, bind `path`, fork one child per request; exit after IDLE_S seconds with nothing to do."""
    import fcntl

    # The lock first: it says "a server for this key is alive" (srpipe.forkserver.start checks it) while we preload.
    lock = open(path.with_suffix(".lock"), "a")  # noqa: SIM115 - held for the server's life
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            # Another server for this key holds it: preloading or serving (then we are not needed once it answers),
            # or on its way out after its idle time (then we take over when it lets go).
            if (probe := _connect(path)) is not None or time.monotonic() > deadline:
                if probe is not None:
                    probe.close()
                return
            time.sleep(0.1)
    for name in PRELOAD:
        try:
            __import__(name)
        except Exception as e:  # an optional library missing or broken: the child imports it (or fails) itself
            print(f"forkserver: preload {name}: {type(e).__name__}: {e}", file=sys.stderr)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a socket file left by a server that died: we hold the lock, so nobody listens on it
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(64)
    path.with_suffix(".pid").write_text(f"{os.getpid()}\n")  # `kill $(cat …pid)` stops it early
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    # A finished command wakes the loop at once (SIGCHLD writes to this socket), so its client hears its status
    # without waiting for the select timeout.
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)
    signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    sel.register(wake_r, selectors.EVENT_READ)
    children: dict[int, socket.socket] = {}
    idle_since = time.monotonic()
    try:
        while children or time.monotonic() - idle_since < IDLE_S:
            for key, _ in sel.select(timeout=1.0):
                if key.fileobj is wake_r:
                    with contextlib.suppress(BlockingIOError):
                        wake_r.recv(4096)
                elif key.fileobj is listener:
                    conn, _ = listener.accept()
                    fds: list[int] = []
                    try:
                        header = _recv(conn, fds)
                    except (OSError, ValueError):
                        conn.close()
                        for fd in fds:
                            os.close(fd)
                        continue
                    pid = os.fork()
                    if pid == 0:
                        _become(header, fds, [sel, listener, lock, wake_r, wake_w, *children.values(), conn])
                    for fd in fds:
                        os.close(fd)
                    print(f"forkserver: served {pid}: srpipe {' '.join(header['argv'])}", file=sys.stderr, flush=True)
                    children[pid] = conn
                    _send(conn, {"pid": pid})
                    sel.register(conn, selectors.EVENT_READ, pid)
                else:  # a client closed its end (killed?): its command must not run on unattended
                    conn, pid = key.fileobj, key.data
                    with contextlib.suppress(OSError):
                        if conn.recv(1):
                            continue
                    sel.unregister(conn)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            while children:  # reap finished commands and report their status
                try:
                    pid, raw = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                conn = children.pop(pid, None)
                if conn is None:
                    continue
                status = os.waitstatus_to_exitcode(raw)
                with contextlib.suppress(OSError):
                    _send(conn, {"status": status if status >= 0 else 128 - status})
                with contextlib.suppress(KeyError, ValueError):
                    sel.unregister(conn)
                conn.close()
                idle_since = time.monotonic()
    finally:
        for leftover in (path, path.with_suffix(".pid")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        listener.close()


def run_served(command: str, params_flag: Callable[[], bool], argv: list[str]) -> int | None:
    """The exit status of `srpipe argv` run by the fork server when it is wanted for `command`, or None: the caller
    runs the command itself (not wanted, a params file that does not load — the command reports it —, no server
    answering yet — one starts in the background —, or a server that cannot be used, with a warning). `params_flag`
    reads params' `orchestration.forkserver`."""
    try:
        if not wanted(command, params_flag):
            return None
    except Exception:  # a bad params file: let the command itself report it
        return None
    try:
        return delegate(argv)
    except (OSError, TimeoutError) as e:
        logging.getLogger("srpipe").warning("fork server not used (%s): running the command in this process", e)
        return None


def wanted(command: str, params_flag: Callable[[], bool]) -> bool:
    """Whether this command should go through the fork server; `params_flag` (params' orchestration.forkserver) is
    called only when the environment does not decide."""
    if os.environ.get(CHILD_ENV) or os.environ.get("LOCAL_RANK") is not None or sys.platform == "win32":
        return False  # already served, a torchrun rank, or no fork/Unix sockets
    if command not in ("download", "prepare", "train", "evaluate", "import", "leaderboard", "upscale"):
        return False
    setting = os.environ.get(ENV, "")
    if setting:
        return setting not in ("0", "false", "no")
    return params_flag()


if __name__ == "__main__":
    serve(Path(sys.argv[1]))

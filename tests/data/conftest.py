"""Fixtures for the data tests: a real loopback HTTP server with failure switches, test images, archives, a test
catalog pointing at the server, and the shared-folder locations. Non-loopback connections are refused outright."""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srpipe.data.catalog import Catalog, read_catalog

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests must never reach the internet: any non-loopback connect or lookup fails at once."""
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(self: socket.socket, address: object) -> None:
        if isinstance(address, tuple) and address[0] not in _LOOPBACK:
            raise OSError(f"test tried to reach {address}: network is off in tests")
        return real_connect(self, address)

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if host not in _LOOPBACK:
            raise OSError(f"test tried to resolve {host}: network is off in tests")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def image_bytes(fmt: str = "PNG", mode: str = "RGB", size: tuple[int, int] = (12, 8), seed: int = 0) -> bytes:
    """A small random image encoded as `fmt` (distinct content per seed)."""
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if mode in ("L", "P") else (size[1], size[0], len(mode))
    img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), "L" if mode == "P" else mode)
    if mode == "P":
        img = img.convert("P")
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def make_tar(members: dict[str, bytes], compression: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compression}") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Seen:
    path: str
    range: str | None


@dataclass
class LoopbackServer:
    """Serves `files` at `url`; the switches make the next response(s) misbehave, `requests` records every GET."""

    url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    cut_once: bool = False  # send half the body, then close the connection
    fail: list[int] = field(default_factory=list)  # statuses for the next requests, one each (e.g. [503])
    stall_once: float = 0.0  # sleep this long before answering the next request
    ignore_range: bool = False  # always answer 200 with the whole body
    wrong_bytes: bool = False  # serve a corrupted body of the right length

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


def _handler(state: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(Seen(self.path, self.headers.get("Range")))
            if state.stall_once:
                delay, state.stall_once = state.stall_once, 0.0
                time.sleep(delay)
            if state.fail:
                self.send_error(state.fail.pop(0))
                return
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            if state.wrong_bytes:
                body = bytes(b ^ 0xFF for b in body)
            start, status = 0, 200
            rng = self.headers.get("Range", "")
            if rng.startswith("bytes=") and rng.endswith("-") and not state.ignore_range:
                start, status = int(rng[6:-1]), 206
            payload = body[start:]
            self.send_response(status)
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if state.cut_once:
                state.cut_once = False
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)  # a real cut: the client sees EOF mid-body
                return
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    state = LoopbackServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def bench_members() -> dict[str, bytes]:
    """An EDSR-style benchmark bundle: Set5 (3 HR + LR x2) and Set14 (2 HR), plus junk the layout must ignore."""
    return {
        "benchmark/Set5/HR/baby.png": image_bytes(seed=1),
        "benchmark/Set5/HR/bird.png": image_bytes(seed=2),
        "benchmark/Set5/HR/head.png": image_bytes(mode="L", seed=3),
        "benchmark/Set5/LR_bicubic/X2/babyx2.png": image_bytes(size=(6, 4), seed=4),
        "benchmark/Set5/LR_bicubic/X2/birdx2.png": image_bytes(size=(6, 4), seed=5),
        "benchmark/Set5/LR_bicubic/X2/headx2.png": image_bytes(size=(6, 4), seed=6),
        "benchmark/Set5/README.txt": b"not an image",
        "benchmark/Set14/HR/bridge.png": image_bytes(mode="L", seed=7),
        "benchmark/Set14/HR/zebra.png": image_bytes(seed=8),
    }


@pytest.fixture
def toy_members() -> dict[str, bytes]:
    """A training zip with nested folders, non-PNG formats, a gray-palette TIFF and macOS junk."""
    return {
        "Toy/a/one.jpg": image_bytes("JPEG", seed=10),
        "Toy/a/two.bmp": image_bytes("BMP", mode="L", seed=11),
        "Toy/b/three.png": image_bytes(seed=12),
        "Toy/b/four.tif": image_bytes("TIFF", mode="P", seed=13),  # Pillow reads it as P with a gray palette
        "Toy/notes.md": b"# skip me",
        "__MACOSX/Toy/b/._three.png": b"\x00\x05\x16\x07",
    }


@pytest.fixture
def catalog_for(tmp_path: Path) -> Callable[..., Catalog]:
    """Write and load a catalog YAML: `catalog_for(yaml_text)`."""

    def make(text: str) -> Catalog:
        path = tmp_path / "catalog.yaml"
        path.write_text(text, encoding="utf-8")
        return read_catalog(path)

    return make


@pytest.fixture
def test_catalog(
    server: LoopbackServer, bench_members: dict[str, bytes], toy_members: dict[str, bytes], catalog_for
) -> Catalog:
    """Set5/Set14 from one tar (published sha256), Toy from a zip (no published checksum), Gone from a 404 URL."""
    bench, toy = make_tar(bench_members), make_zip(toy_members)
    server.files["/bench.tar"] = bench
    server.files["/toy.zip"] = toy
    about = "description: d\n    licence: l\n    homepage: h"
    return catalog_for(f"""
archives:
  bench.tar:
    urls: [{server.url}/bench.tar]
    size: {len(bench)}
    checksum: sha256:{sha256(bench)}
  toy.zip:
    urls: [{server.url}/toy.zip]
    size: null
    checksum: null
  gone.zip:
    urls: [{server.url}/gone.zip]
    size: null
    checksum: md5:{"0" * 32}
datasets:
  Set5:
    {about}
    default_split: test
    sources:
      - archive: bench.tar
        layout:
          test: {{glob: benchmark/Set5/HR/*, count: 3}}
          test_lr_x2: {{glob: benchmark/Set5/LR_bicubic/X2/*, count: 3}}
  Set14:
    {about}
    default_split: test
    sources:
      - archive: bench.tar
        layout:
          test: {{glob: benchmark/Set14/HR/*, count: 2}}
  Toy:
    {about}
    default_split: train
    sources:
      - archive: toy.zip
        layout:
          train: {{glob: Toy/*, count: 4}}
  Gone:
    {about}
    default_split: train
    sources:
      - archive: gone.zip
        layout:
          train: {{glob: "*"}}
""")


@pytest.fixture
def shared_benchmarks() -> Path:
    """The shared Set5/Set14 HR folder beside the repository, or a visible skip where this checkout has none."""
    path = Path(__file__).resolve().parents[2].parent / "shared" / "benchmarks"
    if not (path / "Set5").is_dir():
        pytest.skip(f"no shared benchmark folder at {path}")
    return path


@pytest.fixture
def shared_datasets() -> Path:
    """The shared training-image folder (T91) beside the repository, or a visible skip."""
    path = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
    if not (path / "T91").is_dir():
        pytest.skip(f"no shared dataset folder at {path}")
    return path

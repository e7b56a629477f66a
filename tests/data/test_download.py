"""The downloader against a real loopback HTTP server: resume, retry, checksum refusal, extraction, mirrors, local
folders, optional datasets and idempotence. Every timeout and backoff is tiny, so the whole file runs in seconds."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srpipe.data.catalog import SplitRule, UnknownDatasetError
from srpipe.data.download import ChecksumError, DownloadError, ExtractError, extract, fetch
from srpipe.data.images import ImageError, pixel_digest
from srpipe.stages.download import MANIFEST, UNAVAILABLE, DatasetUnavailableError, download, env_mirrors

from .conftest import image_bytes, make_tar, make_zip, sha256

FAST = {"timeout": 2.0, "retries": 2, "backoff": 0.01, "progress": False}
BLOB = bytes(range(256)) * 400  # 100 KiB, so a cut lands mid-body


def serve_blob(server, name: str = "/blob.bin") -> str:
    server.files[name] = BLOB
    return server.url + name


# ---- fetch -------------------------------------------------------------------------------------------------------


def test_fetch_downloads_verifies_and_records(server, tmp_path: Path) -> None:
    url = serve_blob(server)
    got = fetch([url], tmp_path / "blob.bin", size=len(BLOB), checksum=f"sha256:{sha256(BLOB)}", **FAST)
    assert got.path.read_bytes() == BLOB and got.sha256 == sha256(BLOB) and got.source == url
    assert not (tmp_path / "blob.bin.part").exists()
    assert json.loads((tmp_path / "blob.bin.json").read_text())["sha256"] == sha256(BLOB)
    assert [r.range for r in server.requests] == [None]


def test_fetch_resumes_a_cut_transfer_with_range(server, tmp_path: Path) -> None:
    url = serve_blob(server)
    server.cut_once = True
    got = fetch([url], tmp_path / "blob.bin", size=len(BLOB), checksum=f"md5:{hashlib.md5(BLOB).hexdigest()}", **FAST)
    assert got.path.read_bytes() == BLOB
    assert len(server.requests) == 2 and server.requests[0].range is None
    assert server.requests[1].range == f"bytes={len(BLOB) // 2}-"  # resumed exactly where the cut left off


def test_fetch_restarts_cleanly_when_the_server_ignores_range(server, tmp_path: Path) -> None:
    url = serve_blob(server)
    server.cut_once, server.ignore_range = True, True
    got = fetch([url], tmp_path / "blob.bin", size=len(BLOB), checksum=f"sha256:{sha256(BLOB)}", **FAST)
    assert got.path.read_bytes() == BLOB  # the 200 body replaced the partial file instead of being appended
    assert len(server.requests) == 2 and server.requests[1].range is not None


def test_fetch_retries_after_503_and_after_a_timeout(server, tmp_path: Path) -> None:
    url = serve_blob(server)
    server.fail = [503]
    assert fetch([url], tmp_path / "a.bin", checksum=f"sha256:{sha256(BLOB)}", **FAST).path.read_bytes() == BLOB
    assert len(server.requests) == 2
    server.stall_once = 1.0
    got = fetch([url], tmp_path / "b.bin", checksum=f"sha256:{sha256(BLOB)}", **{**FAST, "timeout": 0.2})
    assert got.path.read_bytes() == BLOB and len(server.requests) == 4


def test_fetch_gives_up_after_its_retries(server, tmp_path: Path) -> None:
    url = serve_blob(server)
    server.fail = [503, 502, 429, 500]
    with pytest.raises(DownloadError, match="HTTP Error 429"):
        fetch([url], tmp_path / "blob.bin", **FAST)  # retries=2: three tries, no more
    assert len(server.requests) == 3 and server.fail == [500]


def test_fetch_refuses_and_deletes_a_checksum_mismatch(server, tmp_path: Path) -> None:
    url = serve_blob(server)
    server.wrong_bytes = True
    expected = sha256(BLOB)
    with pytest.raises(DownloadError) as err:
        fetch([url], tmp_path / "blob.bin", size=len(BLOB), checksum=f"sha256:{expected}", label="Set5 (x)", **FAST)
    message = str(err.value)
    actual = sha256(bytes(b ^ 0xFF for b in BLOB))
    assert "Set5 (x)" in message and url in message and expected in message and actual in message
    assert not (tmp_path / "blob.bin").exists() and not (tmp_path / "blob.bin.part").exists()


def test_fetch_treats_404_as_final_and_tries_the_next_url(server, tmp_path: Path) -> None:
    good = serve_blob(server)
    got = fetch([server.url + "/missing", good], tmp_path / "blob.bin", checksum=f"sha256:{sha256(BLOB)}", **FAST)
    assert got.source == good
    assert server.paths() == ["/missing", "/blob.bin"]  # no retry of the 404


def test_fetch_reports_every_failed_url(server, tmp_path: Path) -> None:
    server.files["/short"] = b"abc"
    with pytest.raises(DownloadError) as err:
        fetch([server.url + "/missing", server.url + "/short"], tmp_path / "f", size=10, label="Toy", **FAST)
    message = str(err.value)
    assert "/missing: HTTP Error 404" in message and "/short has 3 bytes, expected 10" in message


def test_fetch_trusts_on_first_use_then_reuses_and_reverifies_the_cache(server, tmp_path: Path, caplog) -> None:
    url = serve_blob(server)
    dest = tmp_path / "blob.bin"
    with caplog.at_level(logging.WARNING):
        fetch([url], dest, **FAST)
    assert "no published checksum" in caplog.text and sha256(BLOB) in caplog.text
    assert fetch([url], dest, **FAST).source == url and len(server.requests) == 1  # cache hit: no request
    dest.write_bytes(BLOB[:-1] + b"!")  # a damaged cached copy no longer matches the recorded sha256
    assert fetch([url], dest, **FAST).path.read_bytes() == BLOB and len(server.requests) == 2


# ---- extract -----------------------------------------------------------------------------------------------------


def colour_palette_bmp() -> bytes:
    rgb = np.random.default_rng(7).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).convert("P").save(buf, format="BMP")
    return buf.getvalue()


def test_extract_normalises_a_zip(tmp_path: Path, toy_members) -> None:
    archive = tmp_path / "toy.zip"
    extra = {"Toy/c/three.png": image_bytes(seed=99), "Toy/c/five.bmp": colour_palette_bmp()}
    archive.write_bytes(make_zip({**toy_members, **extra}))
    counts = extract(archive, tmp_path / "out", [SplitRule("train", ("Toy/*",), None)])
    out = tmp_path / "out" / "train"
    names = sorted(p.name for p in out.iterdir())
    assert counts == {"train": 6}
    assert names == ["Toy_b_three_png.png", "Toy_c_three_png.png", "five.png", "four.png", "one.png", "two.png"]
    five = Image.open(io.BytesIO(extra["Toy/c/five.bmp"]))
    assert Image.open(out / "five.png").mode == "P"  # a colour palette is kept as it is: still lossless
    assert np.array_equal(np.asarray(Image.open(out / "five.png").convert("RGB")), np.asarray(five.convert("RGB")))
    assert (out / "Toy_b_three_png.png").read_bytes() == toy_members["Toy/b/three.png"]  # PNG copied untouched
    jpeg = np.asarray(Image.open(io.BytesIO(toy_members["Toy/a/one.jpg"])))
    assert np.array_equal(np.asarray(Image.open(out / "one.png")), jpeg)  # decoded pixels, losslessly kept
    assert Image.open(out / "two.png").mode == "L" and Image.open(out / "four.png").mode == "L"  # gray stays gray


def test_extract_applies_exif_orientation_when_converting(tmp_path: Path) -> None:
    pixels = np.zeros((16, 32, 3), np.uint8)
    pixels[:8, :8] = 255  # a white block in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=100, exif=exif.tobytes())
    (tmp_path / "o.zip").write_bytes(make_zip({"o.jpg": buf.getvalue()}))
    extract(tmp_path / "o.zip", tmp_path / "out", [SplitRule("train", ("*",), 1)])
    out = np.asarray(Image.open(tmp_path / "out" / "train" / "o.png"))
    assert out.shape == (32, 16, 3)  # PNG readers ignore EXIF, so the rotation is baked into the pixels
    assert out[:8, -8:].mean() > 200 and out[:8, :8].mean() < 50  # the block is now top-right


def test_extract_tar_gz_and_count_check(tmp_path: Path, bench_members) -> None:
    archive = tmp_path / "b.tar.gz"
    archive.write_bytes(make_tar(bench_members, "gz"))
    rules = [SplitRule("test", ("benchmark/Set5/HR/*",), 3), SplitRule("test_lr_x2", ("*/X2/*",), 3)]
    assert extract(archive, tmp_path / "out", rules) == {"test": 3, "test_lr_x2": 3}
    assert Image.open(tmp_path / "out" / "test" / "head.png").mode == "L"
    with pytest.raises(ExtractError, match=r"expects 4 images .* has 3"):
        extract(archive, tmp_path / "bad", [SplitRule("test", ("benchmark/Set5/HR/*",), 4)])
    assert not (tmp_path / "bad").exists()  # checked before anything is written


@pytest.mark.parametrize("cut", [40, -12])  # mid-header, and only the IEND chunk missing (decodes, fails a CRC walk)
def test_extract_rejects_a_damaged_member_and_a_non_archive(tmp_path: Path, cut: int) -> None:
    archive = tmp_path / "c.zip"
    archive.write_bytes(make_zip({"x/ok.png": image_bytes(), "x/bad.png": image_bytes(size=(64, 64))[:cut]}))
    with pytest.raises(ImageError, match=r"x/bad\.png"):
        extract(archive, tmp_path / "out", [SplitRule("train", ("x/*",), None)])
    assert not (tmp_path / "out" / "train").exists()
    (tmp_path / "n.zip").write_bytes(b"plain text")
    with pytest.raises(ExtractError, match="not a zip or tar"):
        extract(tmp_path / "n.zip", tmp_path / "out", [SplitRule("train", ("*",), None)])


# ---- the stage ---------------------------------------------------------------------------------------------------


def stage(names, raw: Path, catalog, **kw):
    return download(names, raw, catalog=catalog, timeout=2.0, retries=0, progress=False, **kw)


def test_stage_downloads_extracts_and_then_does_no_network_io(server, tmp_path: Path, test_catalog) -> None:
    raw = tmp_path / "data" / "raw"
    summary = stage(["Set5"], raw, test_catalog)
    assert summary == {"Set5": {"source": f"url:{server.url}/bench.tar", "images": {"test": 3, "test_lr_x2": 3}}}
    assert sorted(p.name for p in (raw / "Set5" / "test").iterdir()) == ["baby.png", "bird.png", "head.png"]
    manifest = json.loads((raw / "Set5" / MANIFEST).read_text())
    assert (
        manifest["files"]["test/baby.png"]["sha256"]
        == hashlib.sha256((raw / "Set5/test/baby.png").read_bytes()).hexdigest()
    )
    cache = tmp_path / "data" / "cache" / "downloads" / "bench.tar"  # the default cache location
    kept, inode = cache.read_bytes(), (raw / "Set5" / "test" / "baby.png").stat().st_ino
    cache.unlink()  # so only the manifest can explain a second call without requests
    assert stage(["Set5"], raw, test_catalog) == summary and len(server.requests) == 1
    assert (raw / "Set5" / "test" / "baby.png").stat().st_ino == inode  # complete: not even rewritten
    cache.write_bytes(kept)
    (raw / "Set5" / "test" / "bird.png").unlink()  # an incomplete folder is rebuilt from the cached archive
    stage(["Set5", "Set14"], raw, test_catalog)  # Set14 shares the cached bundle
    assert len(server.requests) == 1 and (raw / "Set5" / "test" / "bird.png").is_file()
    assert sorted(p.name for p in (raw / "Set14" / "test").iterdir()) == ["bridge.png", "zebra.png"]


def test_stage_records_trust_on_first_use(server, tmp_path: Path, test_catalog, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        stage(["toy"], tmp_path / "raw", test_catalog)
    assert "no published checksum" in caplog.text
    archive = json.loads((tmp_path / "raw" / "Toy" / MANIFEST).read_text())["archives"][0]
    assert archive["published"] is None and archive["sha256"] == sha256(server.files["/toy.zip"])


def test_stage_error_names_dataset_url_and_how_to_mirror(server, tmp_path: Path, test_catalog) -> None:
    with pytest.raises(DatasetUnavailableError) as err:
        stage(["Gone"], tmp_path / "raw", test_catalog)
    message = str(err.value)
    for needle in ("'Gone'", f"{server.url}/gone.zip", "404", "--mirror", "SRPIPE_MIRRORS", "--local Gone=DIR"):
        assert needle in message
    assert not (tmp_path / "raw" / "Gone").exists()


def test_optional_unavailable_dataset_leaves_a_marker(server, tmp_path: Path, test_catalog) -> None:
    summary = stage(["Gone", "Set14"], tmp_path / "raw", test_catalog, optional=["gone"])
    assert summary["Gone"]["source"] == "unavailable" and summary["Set14"]["images"] == {"test": 2}
    assert [p.name for p in (tmp_path / "raw" / "Gone").iterdir()] == [UNAVAILABLE]
    assert "gone.zip" in (tmp_path / "raw" / "Gone" / UNAVAILABLE).read_text()
    server.files["/gone.zip"] = b"x"
    stage(["Gone"], tmp_path / "raw", test_catalog, optional=["Gone"])  # not complete, so it is tried again
    assert server.paths().count("/gone.zip") == 2


def write_images(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True)
    for i, name in enumerate(names):
        fmt = {".jpg": "JPEG", ".bmp": "BMP"}.get(Path(name).suffix, "PNG")
        (folder / name).write_bytes(image_bytes(fmt, seed=50 + i))
    return folder


def test_folder_mirror_with_a_dataset_folder(server, tmp_path: Path, test_catalog) -> None:
    mirror = tmp_path / "mirror"
    write_images(mirror / "set5", ["a.png", "b.jpg"])  # case-insensitive folder match, flat -> default split
    write_images(mirror / "Toy" / "train", ["c.bmp"])  # split subfolders keep their names
    summary = stage(["Set5", "Toy"], tmp_path / "raw", test_catalog, mirrors=[str(mirror)])
    assert summary["Set5"] == {"source": f"mirror:{mirror}", "images": {"test": 2}}
    assert summary["Toy"]["images"] == {"train": 1} and server.requests == []


def test_folder_mirror_in_edsr_layout_and_unknown_subfolders(server, tmp_path: Path, test_catalog) -> None:
    mirror = tmp_path / "mirror"
    write_images(mirror / "Set5" / "HR", ["a.png", "b.png"])  # HR -> the default split
    write_images(mirror / "Set5" / "LR_bicubic" / "X2", ["ax2.png"])  # deeper: ignored
    write_images(mirror / "Set5" / "test_lr_x2", ["ax2.png"])  # a split of this dataset's layout
    write_images(mirror / "Set14" / "Set14_HR_oddname", ["c.png"])  # not a split: skipped, so the folder is unusable
    summary = stage(["Set5", "Set14"], tmp_path / "raw", test_catalog, mirrors=[str(mirror)])
    assert summary["Set5"] == {"source": f"mirror:{mirror}", "images": {"test": 2, "test_lr_x2": 1}}
    assert summary["Set14"]["source"] == f"url:{server.url}/bench.tar"  # fell back to the archive
    assert not (tmp_path / "raw" / "Set14" / "Set14_HR_oddname").exists()


def test_folder_mirror_with_the_archive_file(server, tmp_path: Path, test_catalog) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "bench.tar").write_bytes(server.files["/bench.tar"])
    summary = stage(["Set14"], tmp_path / "raw", test_catalog, mirrors=[str(mirror)])
    assert summary["Set14"]["source"] == f"mirror:{mirror}" and server.requests == []


def test_a_bad_mirror_is_skipped_and_never_deleted(server, tmp_path: Path, test_catalog) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "bench.tar").write_bytes(b"tampered")
    (mirror / "Set14").mkdir()
    (mirror / "Set14" / "broken.png").write_bytes(b"\x89PNG not really")
    summary = stage(["Set14"], tmp_path / "raw", test_catalog, mirrors=[str(mirror)])
    assert summary["Set14"]["source"] == f"url:{server.url}/bench.tar"
    assert (mirror / "bench.tar").read_bytes() == b"tampered"


def test_url_mirror_comes_before_the_official_url(server, tmp_path: Path, test_catalog) -> None:
    server.files["/m/bench.tar"] = server.files.pop("/bench.tar")  # the official URL now 404s
    summary = stage(["Set5"], tmp_path / "raw", test_catalog, mirrors=[server.url + "/m/"])
    assert summary["Set5"]["source"] == f"mirror:{server.url}/m" and server.paths() == ["/m/bench.tar"]


def test_env_var_mirrors(server, tmp_path: Path, test_catalog, monkeypatch) -> None:
    server.files["/m/bench.tar"] = server.files.pop("/bench.tar")
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("SRPIPE_MIRRORS", f"{empty}{os.pathsep}{server.url}/m")
    assert env_mirrors() == [str(empty), f"{server.url}/m"]  # the URL's ':' and port do not split it
    assert stage(["Set5"], tmp_path / "raw", test_catalog)["Set5"]["source"] == f"mirror:{server.url}/m"


def test_local_folder_wins_and_is_reimported_when_changed(server, tmp_path: Path, test_catalog) -> None:
    local = write_images(tmp_path / "my_set5", ["x.png", "y.bmp", "z.jpg"])
    raw = tmp_path / "raw"
    summary = stage(["Set5"], raw, test_catalog, local={"set5": str(local)})
    assert summary["Set5"] == {"source": f"local:{local}", "images": {"test": 3}}
    assert sorted(p.name for p in (raw / "Set5" / "test").iterdir()) == ["x.png", "y.png", "z.png"]
    assert server.requests == []
    other = write_images(tmp_path / "other", ["w.png"])
    assert stage(["Set5"], raw, test_catalog, local={"Set5": str(other)})["Set5"]["images"] == {"test": 1}
    with pytest.raises(FileNotFoundError, match="does not exist"):
        stage(["Set5"], raw, test_catalog, local={"Set5": str(tmp_path / "typo")})
    assert (raw / "Set5" / "test" / "w.png").is_file()  # a failed run loses nothing


def test_unknown_dataset_fails_before_any_io(server, tmp_path: Path, test_catalog) -> None:
    with pytest.raises(UnknownDatasetError, match="known datasets: Set5, Set14, Toy, Gone"):
        stage(["Set5", "Set6"], tmp_path / "raw", test_catalog)
    assert not (tmp_path / "raw").exists() and server.requests == []


def test_licence_gated_dataset_explains_how_to_add_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailableError, match=r"--local Manga109=DIR"):
        download(["Manga109"], tmp_path / "raw", progress=False)
    local = write_images(tmp_path / "manga", ["p1.png"])
    summary = download(["Manga109"], tmp_path / "raw", local={"Manga109": str(local)}, progress=False)
    assert summary["Manga109"]["images"] == {"test": 1}


def test_set5_from_the_shared_benchmarks_mirror(tmp_path: Path, shared_benchmarks: Path) -> None:
    summary = download(["Set5"], tmp_path / "raw", mirrors=[str(shared_benchmarks)], progress=False)
    assert summary["Set5"] == {"source": f"mirror:{shared_benchmarks}", "images": {"test": 5}}
    assert json.loads((tmp_path / "raw" / "Set5" / MANIFEST).read_text())["verified"] is True  # catalog digests
    names = sorted(p.name for p in (tmp_path / "raw" / "Set5" / "test").iterdir())
    assert names == ["baby.png", "bird.png", "butterfly.png", "head.png", "woman.png"]


def test_t91_from_the_shared_datasets_mirror(tmp_path: Path, shared_datasets: Path) -> None:
    summary = download(["T91"], tmp_path / "raw", mirrors=[str(shared_datasets)], progress=False)
    assert summary["T91"]["images"] == {"train": 91}
    assert json.loads((tmp_path / "raw" / "T91" / MANIFEST).read_text())["verified"] is True


@pytest.mark.parametrize("code", ["EAI_AGAIN", "EAI_NONAME", "EAI_FAIL"])
def test_a_host_that_does_not_resolve_fails_over_at_once(
    server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str
) -> None:
    # Before: an offline machine's "Temporary failure in name resolution" (EAI_AGAIN) was retried with backoff,
    # ~30 s per optional dataset without a mirror.
    import socket
    import time

    lookups = []
    loopback = socket.getaddrinfo

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if host == "datasets.example.org":
            lookups.append(host)
            raise socket.gaierror(getattr(socket, code), "name resolution failed")
        return loopback(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    good = serve_blob(server)
    started = time.monotonic()
    got = fetch(
        ["http://datasets.example.org/blob.bin", good],
        tmp_path / "blob.bin",
        checksum=f"sha256:{sha256(BLOB)}",
        **{**FAST, "retries": 4, "backoff": 5.0},  # one retry would take 5 s
    )
    assert got.source == good and lookups == ["datasets.example.org"]
    assert time.monotonic() - started < 3


# ---- verification of folder copies against the catalog's per-image checksums (issue 14 item 4c) -------------------


@pytest.fixture
def checked_catalog(server, tmp_path: Path, test_catalog, bench_members, catalog_for):
    """Set5 from the test bundle, with the catalog's pixel sha256 of its three HR images."""
    folder = tmp_path / "digests"
    folder.mkdir()
    lines = []
    for member in ("baby", "bird", "head"):
        (folder / f"{member}.png").write_bytes(bench_members[f"benchmark/Set5/HR/{member}.png"])
        lines.append(f"      test/{member}: {pixel_digest(folder / f'{member}.png')}")
    bench = server.files["/bench.tar"]
    return catalog_for(
        f"""
archives:
  bench.tar: {{urls: [{server.url}/bench.tar], size: {len(bench)}, checksum: "sha256:{sha256(bench)}"}}
datasets:
  Set5:
    description: d
    licence: l
    homepage: h
    default_split: test
    sources:
      - archive: bench.tar
        layout: {{test: {{glob: benchmark/Set5/HR/*, count: 3}}}}
    images:
"""
        + "\n".join(lines)
    )


def _mirror_set5(root: Path, bench_members, alter: str = "", fmt: str = "PNG") -> Path:
    """`root/Set5/` holding the bundle's three HR images (as `fmt`), with one pixel of `alter` changed."""
    folder = root / "Set5"
    folder.mkdir(parents=True)
    for member in ("baby", "bird", "head"):
        img = Image.open(io.BytesIO(bench_members[f"benchmark/Set5/HR/{member}.png"]))
        pixels = np.array(img)
        if member == alter:
            pixels[0, 0] ^= 1  # the smallest change there is
        Image.fromarray(pixels, img.mode).save(folder / f"{member}.{fmt.lower()}", format=fmt)
    return root


def _manifest(raw: Path, name: str) -> dict:
    return json.loads((raw / name / MANIFEST).read_text())


def test_a_folder_copy_matching_the_catalog_is_verified_whatever_its_encoding(
    server, tmp_path: Path, checked_catalog, bench_members
) -> None:
    mirror = _mirror_set5(tmp_path / "mirror", bench_members, fmt="BMP")  # other bytes, the same pixels
    summary = stage(["Set5"], tmp_path / "raw", checked_catalog, mirrors=[str(mirror)])
    assert summary["Set5"]["source"] == f"mirror:{mirror}" and server.requests == []
    assert _manifest(tmp_path / "raw", "Set5")["verified"] is True


def test_an_altered_mirror_image_is_refused_and_the_next_source_used(
    server, tmp_path: Path, checked_catalog, bench_members, caplog
) -> None:
    mirror = _mirror_set5(tmp_path / "mirror", bench_members, alter="bird")
    with caplog.at_level(logging.WARNING):
        summary = stage(["Set5"], tmp_path / "raw", checked_catalog, mirrors=[str(mirror)])
    assert summary["Set5"]["source"] == f"url:{server.url}/bench.tar"  # the published archive instead
    assert "does not match the catalog's image checksums (changed: test/bird)" in caplog.text
    manifest = _manifest(tmp_path / "raw", "Set5")
    assert manifest["verified"] is True and "published checksum" in manifest["verification"]


def test_an_altered_local_folder_is_an_error_and_an_incomplete_one_too(
    server, tmp_path: Path, checked_catalog, bench_members
) -> None:
    local = _mirror_set5(tmp_path / "altered", bench_members, alter="head") / "Set5"
    with pytest.raises(ChecksumError, match=r"Set5: .*altered/Set5 does not match .*\(changed: test/head\)"):
        stage(["Set5"], tmp_path / "raw", checked_catalog, local={"Set5": str(local)})
    short = _mirror_set5(tmp_path / "short", bench_members) / "Set5"
    (short / "baby.png").rename(short / "extra.png")
    with pytest.raises(ChecksumError, match=r"missing: test/baby; not in the dataset: test/extra"):
        stage(["Set5"], tmp_path / "raw", checked_catalog, local={"Set5": str(short)})
    assert not (tmp_path / "raw" / "Set5").exists()


def test_folders_and_archives_without_checksums_are_marked_unverified(server, tmp_path: Path, test_catalog) -> None:
    mirror = tmp_path / "mirror"
    write_images(mirror / "Set14", ["a.png"])
    raw = tmp_path / "raw"
    stage(["Set14", "Toy", "Set5"], raw, test_catalog, mirrors=[str(mirror)])
    set14, toy, set5 = (_manifest(raw, name) for name in ("Set14", "Toy", "Set5"))
    assert set14["verified"] is False and "no per-image checksums for Set14" in set14["verification"]
    assert toy["verified"] is False and "no published checksum for toy.zip" in toy["verification"]
    assert set5["verified"] is True  # its archive has a published sha256


def test_an_altered_copy_of_the_shared_set5_is_refused(tmp_path: Path, shared_benchmarks: Path) -> None:
    # The reproduction of issue 14 item 4c, with the packaged catalog: one pixel of one image changed.
    mirror = tmp_path / "mirror" / "Set5"
    mirror.mkdir(parents=True)
    for src in (shared_benchmarks / "Set5").iterdir():
        (mirror / src.name).write_bytes(src.read_bytes())
    img = Image.open(mirror / "bird.png")
    pixels = np.array(img)
    pixels[10, 10] ^= 8
    Image.fromarray(pixels, img.mode).save(mirror / "bird.png")
    with pytest.raises(DatasetUnavailableError, match=r"does not match the catalog's .*\(changed: test/bird\)"):
        download(["Set5"], tmp_path / "raw", mirrors=[str(mirror.parent)], progress=False, retries=0, timeout=1)


def test_splits_the_catalog_does_not_list_are_copied_but_marked_unverified(
    server, tmp_path: Path, checked_catalog, bench_members
) -> None:
    mirror = _mirror_set5(tmp_path / "mirror", bench_members)
    (mirror / "Set5" / "valid").mkdir()
    (mirror / "Set5" / "valid" / "extra.png").write_bytes(image_bytes(seed=99))
    summary = stage(["Set5"], tmp_path / "raw", checked_catalog, mirrors=[str(mirror)])
    assert summary["Set5"]["images"] == {"test": 3, "valid": 1}
    manifest = _manifest(tmp_path / "raw", "Set5")
    assert manifest["verified"] is False and manifest["verification"].endswith("valid: unchecked")


def test_a_copy_made_before_checks_is_checked_again(server, tmp_path: Path, checked_catalog, bench_members) -> None:
    mirror = _mirror_set5(tmp_path / "mirror", bench_members)
    raw = tmp_path / "raw"
    stage(["Set5"], raw, checked_catalog, mirrors=[str(mirror)])
    manifest = _manifest(raw, "Set5")
    del manifest["verified"]  # as written before this check existed
    (raw / "Set5" / MANIFEST).write_text(json.dumps(manifest))
    stage(["Set5"], raw, checked_catalog, mirrors=[str(mirror)])
    assert _manifest(raw, "Set5")["verified"] is True

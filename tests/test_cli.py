"""`srpipe` command line: the subcommands and their help, `models --json`, the `evaluate` contract, light imports."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srpipe.cli import build_parser, main
from srpipe.models import get_card, list_models

SUBCOMMANDS = [
    "download",
    "prepare",
    "train",
    "evaluate",
    "leaderboard",
    "models",
    "upscale",
    "import",
    "run",
    "manifest",
]


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_help_lists_every_subcommand() -> None:
    # Through the interpreter's `-m srpipe`, the same module the console script and `torchrun -m srpipe` run.
    proc = subprocess.run([sys.executable, "-m", "srpipe", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for name in SUBCOMMANDS:
        assert f"\n    {name} " in proc.stdout, f"{name} missing from:\n{proc.stdout}"
    assert set(_subparsers()) == set(SUBCOMMANDS)


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_has_help_and_a_description(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    description = _subparsers()[name].description
    assert description and len(description) > 30
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([name, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: srpipe {name}") and description.splitlines()[0] in out


def test_models_json_covers_every_model_scale_and_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert isinstance(rows, list) and all(isinstance(r, dict) for r in rows)
    for r in rows:
        assert {"name", "scale", "config", "params"} <= set(r)
        assert isinstance(r["params"], int) and r["params"] >= 0
    expected = {(m, s, c) for m in list_models() for s in get_card(m).scales for c in ("paper", "tiny")}
    assert {(r["name"], r["scale"], r["config"]) for r in rows} == expected
    assert len(rows) == len(expected)
    tiny_edsr = next(r for r in rows if (r["name"], r["scale"], r["config"]) == ("edsr", 4, "tiny"))
    paper_edsr = next(r for r in rows if (r["name"], r["scale"], r["config"]) == ("edsr", 4, "paper"))
    assert 0 < tiny_edsr["params"] < 100_000 < 40_000_000 < paper_edsr["params"]


def test_evaluate_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hr_dir = tmp_path / "toyset"
    hr_dir.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(64, 80), (72, 64), (96, 100)]):
        coarse = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((w, h), Image.BICUBIC).save(hr_dir / f"img{i}.png")
    out = tmp_path / "eval.json"
    (tmp_path / "params.yaml").write_text("{}\n")  # every default
    argv = ["--params", str(tmp_path / "params.yaml"), "evaluate", "--model", "bicubic", "--hr-dir", str(hr_dir)]
    assert main([*argv, "--scale", "4", "--json", str(out), "--device", "cpu", "--no-progress"]) == 0
    printed = capsys.readouterr().out.splitlines()
    result = json.loads(out.read_text())
    images = result["images"]
    assert [im["name"] for im in images] == ["img0", "img1", "img2"]
    assert all(set(im) >= {"name", "psnr", "ssim"} for im in images)
    assert all(15 < im["psnr"] < 60 and 0 < im["ssim"] <= 1 for im in images)
    assert result["psnr"] == pytest.approx(np.mean([im["psnr"] for im in images]), abs=1e-9)
    assert result["ssim"] == pytest.approx(np.mean([im["ssim"] for im in images]), abs=1e-9)
    for im in images:
        assert any(line.split()[:1] == [im["name"]] and f"{im['psnr']:7.3f}" in line for line in printed), printed
    mean_line = next(line for line in printed if line.split()[:1] == ["mean"])
    assert f"{result['psnr']:7.3f}" in mean_line and f"{result['ssim']:.4f}" in mean_line


def test_import_srpipe_pulls_in_no_orchestration_or_tracking() -> None:
    code = (
        "import sys, srpipe, srpipe.models, srpipe.cli\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'prefect', 'mlflow', 'dvc'})\n"
        "print(','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"imported at `import srpipe`: {proc.stdout.strip()}"


def _one_error(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> str:
    """The single ERROR line a failed command logged; no traceback anywhere."""
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1, errors
    return errors[0]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("malformed yaml", r"bad\.yaml: not valid YAML \(.*line"),
        ("missing params", r"absent\.yaml: no such parameters file"),
        ("zero cadence", r"params\.yaml\.train: val_every must be ≥ 1, got 0"),
        ("unknown dataset", r"unknown dataset 'NoSuchSet'; known datasets: sample"),
    ],
)
def test_user_errors_are_one_line_not_a_traceback(
    tmp_path: Path, case: str, expected: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    params = {"malformed yaml": tmp_path / "bad.yaml", "missing params": tmp_path / "absent.yaml"}.get(case)
    params = params or tmp_path / "params.yaml"
    if case == "malformed yaml":
        params.write_text("train: [unclosed\n  x: {")
    elif case == "zero cadence":
        params.write_text("train: {val_every: 0}\n")
    elif case == "unknown dataset":
        params.write_text("{}\n")
    argv = ["--params", str(params), "download", "--raw", str(tmp_path / "raw"), "--no-progress"]
    with caplog.at_level("ERROR", logger="srpipe"):
        status = main([*argv, "--dataset", "NoSuchSet" if case == "unknown dataset" else "sample"])
    assert status == 2
    assert re.search(expected, _one_error(caplog, capsys))
    assert not (tmp_path / "raw").exists()  # nothing ran


def test_iterations_zero_or_negative_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    # Before: --iterations 0 trained the paper's full budget, -5 wrote an untrained weights file with exit 0.
    for value in ("0", "-5"):
        with pytest.raises(SystemExit) as exit_:
            build_parser().parse_args(["train", "--model", "edsr", "--scale", "2", "--iterations", value])
        assert exit_.value.code == 2 and "must be ≥ 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command", [["upscale", "x.png", "--model", "edsr", "--out", "o"], ["evaluate", "--model", "edsr", "--scale", "2"]]
)
def test_max_memory_must_be_a_size(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*command, "--max-memory", "lots"])
    assert exit_.value.code == 2 and "not a memory size: 'lots'" in capsys.readouterr().err
    assert build_parser().parse_args([*command, "--max-memory", "2GB"]).max_memory == "2GB"


def test_run_checks_model_names_before_loading_the_flow(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: an unknown model surfaced only after download, prepare and a full training of the others.
    marker, flow = tmp_path / "FLOW_RAN", tmp_path / "flow.py"
    flow.write_text(f"open({str(marker)!r}, 'w').write('ran')\ndef pipeline(params_path): return {{}}\n")
    params = tmp_path / "params.yaml"
    for models, expected in ((["edsr", "nosuchnet"], r"unknown model 'nosuchnet'"), (["lapsrn"], r"lapsrn has no x3")):
        params.write_text(json.dumps({"pipeline": {"models": models, "scales": [3]}}))
        caplog.clear()
        with caplog.at_level("ERROR", logger="srpipe"):
            assert main(["--params", str(params), "run", "--flow", str(flow)]) == 2
        assert re.search(expected, _one_error(caplog, capsys)) and not marker.exists()


def test_unexpected_errors_are_one_line_unless_debug(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    import srpipe.models.summary

    def broken() -> None:
        raise TypeError("a bug")

    monkeypatch.setattr(srpipe.models.summary, "model_table", broken)
    with caplog.at_level("ERROR", logger="srpipe"):
        assert main(["models"]) == 1
    assert "unexpected error (TypeError: a bug); rerun with --debug" in _one_error(caplog, capsys)
    with pytest.raises(TypeError):
        main(["--debug", "models"])
    monkeypatch.setenv("SRPIPE_DEBUG", "1")
    with pytest.raises(TypeError):
        main(["models"])

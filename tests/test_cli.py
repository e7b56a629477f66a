"""`srpipe` command line: the subcommands and their help, `models --json`, the `evaluate` contract, light imports."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srpipe.cli import build_parser, main
from srpipe.models import get_card, list_models

SUBCOMMANDS = ["download", "prepare", "train", "evaluate", "leaderboard", "models", "upscale", "run"]


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
    argv = ["--params", str(tmp_path / "absent.yaml"), "evaluate", "--model", "bicubic", "--hr-dir", str(hr_dir)]
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

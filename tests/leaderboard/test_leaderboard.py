"""The leaderboard stage on real bicubic evaluations of Set5 (x2, x4) plus two fabricated models with saved images."""

from __future__ import annotations

import copy
import json
import logging
import re
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

import srpipe.leaderboard
from srpipe.config import EvaluateParams, LeaderboardParams
from srpipe.context import QUIET, Context
from srpipe.data.images import list_images, load_image, save_png
from srpipe.degrade import modcrop
from srpipe.leaderboard import plots
from srpipe.leaderboard.plots import pareto_front
from srpipe.leaderboard.report import cells
from srpipe.leaderboard.table import SCHEMA, EvaluationError, build_rows, load_evaluations
from srpipe.metrics import score
from srpipe.stages.evaluate import evaluate
from srpipe.stages.leaderboard import leaderboard

BENCHMARKS = Path(__file__).resolve().parents[2].parent / "shared" / "benchmarks"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "leaderboard-schema.md"

EXPECTED_SCHEMA = [  # the documented contract: a change here must only append
    *[("model", "string"), ("paper", "string"), ("year", "int64"), ("config", "string"), ("scale", "int64")],
    *[("dataset", "string"), ("psnr", "double"), ("ssim", "double"), ("psnr_rgb", "double"), ("n_images", "int64")],
    *[("published_psnr", "double"), ("published_ssim", "double"), ("published_source", "string")],
    *[("published_status", "string"), ("gap_psnr", "double"), ("gap_ssim", "double")],
    *[("gain_psnr_over_bicubic", "double"), ("params", "int64"), ("flops", "int64"), ("flops_input", "string")],
    *[("latency_ms", "double"), ("peak_memory_mb", "double"), ("device", "string"), ("self_ensemble", "bool")],
    *[("train_iterations", "int64"), ("train_seconds", "double"), ("train_note", "string")],
    *[("train_color", "string"), ("weights_sha256", "string"), ("git_commit", "string")],
    *[("mlflow_run_id", "string"), ("eval_mlflow_run_id", "string")],
    *[("source", "string"), ("protocol", "string"), ("weights_source", "string"), ("training_data", "string")],
    *[("published_training", "string"), ("train_recipe", "string"), ("released", "string")],
]


def _fake(base: dict[str, Any], model: str, weight: float, eval_dir: Path, **fields: Any) -> dict[str, Any]:
    """A trained model's evaluation: SR = blend of HR and the saved bicubic image, scored and saved like evaluate.

    espcn's images go where dvc.yaml puts them (images/<model>_x<scale>/<dataset>/), the others' to images/<dataset>/.
    """
    ev = copy.deepcopy(base) | {"model": model, "config": "tiny", "weights": f"{model}.pt", **fields}
    ev["train"] = {"iterations": 100, "seconds": 2.5, "mlflow_run_id": "", "note": "", "color": "rgb"}
    scale, rows = ev["scale"], []
    for path in list_images(BENCHMARKS / "Set5"):
        img = load_image(path)
        hr = np.array(modcrop(img.pixels, scale))
        bic = load_image(eval_dir / "images" / "Set5" / f"{path.stem}_x{scale}_bicubic.png").pixels
        sr = np.round(weight * hr + (1 - weight) * bic.astype(np.float64)).astype(np.uint8)
        folder = eval_dir / "images" / (f"{model}_x{scale}" if model == "espcn" else "") / "Set5"
        save_png(folder / f"{path.stem}_x{scale}_{model}.png", sr)
        rows.append({"name": path.stem, **score(sr, hr, scale, img.gray)})
    means = {k: float(np.mean([r[k] for r in rows])) for k in ("psnr", "ssim", "psnr_rgb")}
    ev["datasets"] = {"Set5": means | {"images": rows}}
    return ev | {"psnr": means["psnr"], "ssim": means["ssim"], "images": rows}


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real bicubic x2/x4 evaluations of Set5 (images saved) and fabricated edsr (x2, x4) and espcn (x4)."""
    if not (BENCHMARKS / "Set5").is_dir():
        pytest.skip(f"Set5 benchmark images not found at {BENCHMARKS / 'Set5'}")
    out = tmp_path_factory.mktemp("eval")
    params = EvaluateParams(latency_repeats=1)
    for s in (2, 4):
        json_path = out / f"bicubic_x{s}.json"
        evaluate(
            "bicubic",
            s,
            {"Set5": BENCHMARKS / "Set5"},
            params,
            out_json=json_path,
            save_images=out / "images",
            ctx=QUIET,
        )
    for name, base, weight, extra in [
        ("edsr_x4", "bicubic_x4", 0.7, {"params": 43_000_000, "flops": 9 * 10**11, "latency_ms": 900.0}),
        ("espcn_x4", "bicubic_x4", 0.3, {"params": 21_000, "flops": 2 * 10**8, "latency_ms": 20.0}),
        ("edsr_x2", "bicubic_x2", 0.6, {"params": 40_700_000, "flops": 8 * 10**11, "latency_ms": 800.0}),
    ]:
        ev = _fake(json.loads((out / f"{base}.json").read_text()), name.split("_x")[0], weight, out, **extra)
        (out / f"{name}.json").write_text(json.dumps(ev))
    return out


@pytest.fixture(scope="module")
def board(eval_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("board")
    return out, leaderboard(eval_dir, out, LeaderboardParams(), raw_dir=BENCHMARKS)


def _evals(eval_dir: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in eval_dir.glob("*.json")}


def test_files_and_summary(board: tuple[Path, dict[str, Any]]) -> None:
    out, summary = board
    names = ["leaderboard.parquet", "LEADERBOARD.md", "leaderboard.json", "psnr_vs_cost.png", "visual_Set5.png"]
    assert sorted(Path(f).name for f in summary["files"]) == sorted(names)
    assert all((out / n).is_file() for n in names)
    assert summary["rows"] == 5 and summary["scales"] == [2, 4] and summary["datasets"] == ["Set5"]
    assert summary["models"] == ["bicubic", "edsr", "espcn"]
    assert summary["champions"] == {}  # the fabricated models have no training run to register
    assert not list(out.glob(".*.tmp")), "temp files left behind"


def test_parquet_schema_is_pinned(board: tuple[Path, dict[str, Any]]) -> None:
    schema = pq.read_schema(board[0] / "leaderboard.parquet")
    assert [(f.name, str(f.type)) for f in schema] == EXPECTED_SCHEMA
    df = pq.read_table(board[0] / "leaderboard.parquet").to_pandas()
    assert df["train_note"].isna().all()  # all null, yet typed string above
    assert list(df.scale) == [2, 2, 4, 4, 4] and df[df.scale == 4].psnr.is_monotonic_decreasing


def test_schema_is_documented() -> None:
    doc = DOCS.read_text(encoding="utf-8")
    arrow_names = {"string": "string", "int64": "int64", "double": "float64", "bool": "bool"}
    for name, type_ in EXPECTED_SCHEMA:
        assert f"| `{name}` | {arrow_names[type_]} |" in doc, name
    assert [f.name for f in SCHEMA] == [n for n, _ in EXPECTED_SCHEMA]


def test_rows_match_the_evaluations(board: tuple[Path, dict[str, Any]], eval_dir: Path) -> None:
    df = pq.read_table(board[0] / "leaderboard.parquet").to_pandas().set_index(["model", "scale"])
    for ev in _evals(eval_dir).values():
        row = df.loc[(ev["model"], ev["scale"])]
        assert row.psnr == ev["datasets"]["Set5"]["psnr"] and row.ssim == ev["datasets"]["Set5"]["ssim"]
        assert row.flops == ev["flops"] and row.n_images == 5 and row.dataset == "Set5"
    assert df.loc[("edsr", 4)].paper == "Lim et al., CVPRW 2017" and df.loc[("edsr", 4)].year == 2017


def test_gap_and_gain(board: tuple[Path, dict[str, Any]]) -> None:
    df = pq.read_table(board[0] / "leaderboard.parquet").to_pandas().set_index(["model", "scale"])
    edsr, bic = df.loc[("edsr", 4)], df.loc[("bicubic", 4)]
    assert edsr.published_psnr == 32.46 and edsr.published_status == "published"
    assert edsr.gap_psnr == edsr.psnr - 32.46 and edsr.gap_ssim == edsr.ssim - 0.8968
    assert bic.gap_psnr == bic.psnr - 28.42 and abs(bic.gap_psnr) < 0.02  # our bicubic reproduces the table
    assert edsr.gain_psnr_over_bicubic == edsr.psnr - bic.psnr and bic.gain_psnr_over_bicubic == 0
    espcn = df.loc[("espcn", 4)]
    assert espcn.published_status == "not published" and np.isnan(espcn.gap_psnr) and np.isnan(espcn.published_psnr)


def test_gain_is_null_without_bicubic() -> None:
    ev = {"model": "edsr", "scale": 3, "datasets": {"Set5": {"psnr": 34.0, "ssim": 0.92, "images": []}}}
    (row,) = build_rows([ev])
    assert row["gain_psnr_over_bicubic"] is None and row["gap_psnr"] == 34.0 - 34.65


def test_markdown(board: tuple[Path, dict[str, Any]], eval_dir: Path) -> None:
    md = (board[0] / "LEADERBOARD.md").read_text(encoding="utf-8")
    assert "Y channel" in md and "BI" in md and "docs/leaderboard-schema.md" in md and "tiny" in md
    section = md.split("## x4 on Set5")[1].split("##")[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("| ") and not ln.startswith("| #")]
    table = [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines]
    evs = sorted((ev for ev in _evals(eval_dir).values() if ev["scale"] == 4), key=lambda ev: -ev["psnr"])
    assert [row[1] for row in table] == [ev["model"] for ev in evs]  # best PSNR first
    for row, ev in zip(table, evs):
        assert row[2] == f"{ev['datasets']['Set5']['psnr']:.2f}" and row[3] == f"{ev['datasets']['Set5']['ssim']:.4f}"
    rows = [r for r in pq.read_table(board[0] / "leaderboard.parquet").to_pylist() if r["scale"] == 4]
    assert table == [[c.replace("|", "\\|") for c in cells(i, r)] for i, r in enumerate(rows, 1)]
    by_model = {row[1]: row for row in table}
    assert by_model["bicubic"][4] == "baseline" and by_model["bicubic"][6] == "published"
    assert by_model["edsr"][5] == "32.46 / 0.8968" and by_model["espcn"][6] == "not published"
    assert "EDSR CVPRW'17 Table 6" in section


def test_metrics_json(board: tuple[Path, dict[str, Any]], eval_dir: Path) -> None:
    m = json.loads((board[0] / "leaderboard.json").read_text())
    assert m["x4"]["Set5"]["edsr"]["psnr"] == _evals(eval_dir)["edsr_x4"]["psnr"]
    assert m["x4"]["Set5"]["espcn"]["gap_psnr"] is None


def test_plots_are_pngs_of_the_declared_size(board: tuple[Path, dict[str, Any]]) -> None:
    for name, size in [("psnr_vs_cost.png", (1600, 1600)), ("visual_Set5.png", (1600, 800))]:  # 2 scales: 2 rows
        with Image.open(board[0] / name) as im:
            im.verify()
        with Image.open(board[0] / name) as im:
            assert im.format == "PNG" and im.size == size, name


def test_visual_reads_both_image_layouts(eval_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(plots, "visual", lambda *args: calls.append(args))
    evals = load_evaluations(eval_dir)
    # The authors' EDSR scored beside srpipe's: it saved no images, and edsr's on disk are srpipe's, not its own
    released = copy.deepcopy(next(ev for ev in evals if (ev["model"], ev["scale"]) == ("edsr", 4)))
    released["released"] = "edsr_x4"
    path = plots.visual_from_evaluations([*evals, released], "Set5", eval_dir / "images", BENCHMARKS, 96, tmp_path)
    ((hr, scale, sources, crop, _, out),) = calls
    assert path == out == tmp_path / "visual_Set5.png" and scale == 4 and crop == 96 and hr.parent.name == "Set5"
    assert [s.label for s in sources] == ["bicubic", "edsr", "espcn"]  # bicubic first, then by PSNR on that image
    assert sources[2].path.parent.parent.name == "espcn_x4" and sources[1].path.parent.parent.name == "images"


def test_pareto_front() -> None:
    pts = [(10.0, 30.0), (5.0, 29.0), (20.0, 29.5), (50.0, 31.0), (5.0, 28.0)]
    assert pareto_front(pts) == [1, 0, 3]


@pytest.mark.parametrize(
    "text,message",
    [
        ('{"model": "edsr", "scale": 4, "datasets": {', "not a readable evaluation JSON"),
        ('{"model": "edsr", "datasets": {}}', "integer 'scale'"),
        ('{"model": "edsr", "scale": 4, "datasets": {"Set5": {"psnr": "high"}}}', "datasets.Set5"),
        ("[1, 2]", "not a JSON object"),
    ],
)
def test_malformed_json_names_the_file(eval_dir: Path, tmp_path: Path, text: str, message: str) -> None:
    shutil.copy(eval_dir / "bicubic_x4.json", tmp_path / "bicubic_x4.json")
    (tmp_path / "broken_x4.json").write_text(text)
    with pytest.raises(EvaluationError, match=message) as info:
        leaderboard(tmp_path, tmp_path / "out", LeaderboardParams())
    assert str(tmp_path / "broken_x4.json") in str(info.value)
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_duplicate_and_empty(eval_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match="no evaluation JSONs"):
        leaderboard(tmp_path, tmp_path / "out", LeaderboardParams())
    shutil.copy(eval_dir / "bicubic_x4.json", tmp_path / "a.json")
    shutil.copy(eval_dir / "bicubic_x4.json", tmp_path / "b.json")
    with pytest.raises(EvaluationError, match=r"b\.json and .*a\.json both evaluate bicubic x4"):
        leaderboard(tmp_path, tmp_path / "out", LeaderboardParams())


def test_no_saved_images_or_matplotlib(
    eval_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="srpipe")
    for p in eval_dir.glob("*.json"):  # the JSONs without their images folder
        shutil.copy(p, tmp_path / p.name)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "visual_Urban100.png").write_bytes(b"stale")
    summary = leaderboard(tmp_path, tmp_path / "out", LeaderboardParams(), raw_dir=BENCHMARKS)
    assert [Path(f).name for f in summary["files"]][-1] == "psnr_vs_cost.png"
    assert not list((tmp_path / "out").glob("visual_*.png"))  # no current visual, and the stale one is gone
    assert "no saved SR images" in caplog.text
    monkeypatch.delattr(srpipe.leaderboard, "plots", raising=False)
    monkeypatch.setitem(sys.modules, "srpipe.leaderboard.plots", None)  # import fails as without matplotlib
    summary = leaderboard(tmp_path, tmp_path / "out2", LeaderboardParams())
    assert [Path(f).suffix for f in summary["files"]] == [".parquet", ".md", ".json"]
    assert "pip install" in caplog.text


def test_concurrent_runs_never_tear_files(board: tuple[Path, dict[str, Any]], eval_dir: Path, tmp_path: Path) -> None:
    out, errors, done = tmp_path / "lb", [], threading.Event()

    def write() -> None:
        try:
            for _ in range(3):
                leaderboard(eval_dir, out, LeaderboardParams(), raw_dir=BENCHMARKS)
        except Exception as e:  # surfaced below: a thread's exception would otherwise vanish
            errors.append(e)

    def read() -> None:
        while not done.is_set():
            try:
                # Each file on its own: the first run publishes the Parquet table before the JSON exists.
                if (out / "leaderboard.parquet").exists():
                    assert pq.read_table(out / "leaderboard.parquet").num_rows == 5
                if (out / "leaderboard.json").exists():
                    json.loads((out / "leaderboard.json").read_text())
            except Exception as e:
                errors.append(e)

    writers = [threading.Thread(target=write) for _ in range(2)]
    reader = threading.Thread(target=read)
    for t in [*writers, reader]:
        t.start()
    for t in writers:
        t.join()
    done.set()
    reader.join()
    assert not errors, errors
    assert pq.read_table(out / "leaderboard.parquet").num_rows == 5
    assert (out / "LEADERBOARD.md").read_bytes() == (board[0] / "LEADERBOARD.md").read_bytes()  # deterministic
    assert not list(out.glob(".*"))  # every temp file was renamed or removed


@pytest.mark.slow  # a real MLflow sqlite store: a few seconds
def test_registers_the_champion(eval_dir: Path, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("lb-test", artifact_location=(tmp_path / "artifacts").as_uri())
    evals = tmp_path / "eval"
    shutil.copytree(eval_dir, evals)
    run_ids = {}
    for model in ("edsr", "espcn"):  # stand-ins for the training runs, each with a weights artifact
        run_ids[model] = client.create_run(exp, run_name=f"train {model} x4").info.run_id
        (tmp_path / f"{model}_x4.pt").write_bytes(b"weights")
        client.log_artifact(run_ids[model], str(tmp_path / f"{model}_x4.pt"), "weights")
        ev = json.loads((evals / f"{model}_x4.json").read_text())
        ev["train"]["mlflow_run_id"] = run_ids[model]
        (evals / f"{model}_x4.json").write_text(json.dumps(ev))
    for _ in range(2):  # the second run must reuse the version, not add one
        summary = leaderboard(evals, tmp_path / "lb", LeaderboardParams(), ctx=Context(uri, "lb-test"))
    assert summary["champions"] == {
        "x4": {"model": "edsr", "psnr": json.loads((evals / "edsr_x4.json").read_text())["psnr"], "dataset": "Set5"}
        | {"version": "1"}
    }
    champion = client.get_model_version_by_alias("srpipe-x4", "champion")
    assert champion.run_id == run_ids["edsr"] and champion.source == f"runs:/{run_ids['edsr']}/weights"
    assert len(client.search_model_versions("name='srpipe-x4'")) == 1
    artifacts = {a.path for a in client.list_artifacts(summary["mlflow_run_id"], "leaderboard")}
    assert "leaderboard/leaderboard.parquet" in artifacts and "leaderboard/LEADERBOARD.md" in artifacts


def test_evaluations_outside_the_pipeline_are_left_out(eval_dir: Path, tmp_path: Path) -> None:
    include = {("bicubic", 4), ("espcn", 4)}  # edsr's JSONs stay in the folder, as after removing it from params
    summary = leaderboard(eval_dir, tmp_path, LeaderboardParams(), include=include)
    assert summary["models"] == ["bicubic", "espcn"] and summary["scales"] == [4]
    table = pq.read_table(tmp_path / "leaderboard.parquet").to_pandas()
    assert set(zip(table["model"], table["scale"])) == include


def test_non_finite_scores_are_left_out_with_a_reason(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Before: an evaluation of an empty folder (NaN) or a diverged model (inf) showed up as `nan`/`inf` rows.
    evals = tmp_path / "eval"
    evals.mkdir()
    good = {"psnr": 25.0, "ssim": 0.7, "images": []}
    (evals / "bicubic_x4.json").write_text(
        json.dumps(
            {
                "model": "bicubic",
                "scale": 4,
                "datasets": {"Set5": good, "empty": {"psnr": float("nan"), "ssim": float("nan")}},
            }
        )
    )
    (evals / "edsr_x4.json").write_text(
        json.dumps({"model": "edsr", "scale": 4, "datasets": {"Set5": {"psnr": float("inf"), "ssim": 0.9}}})
    )
    with caplog.at_level(logging.WARNING):
        summary = leaderboard(evals, tmp_path / "board", LeaderboardParams(), register_best=False)
    assert summary["rows"] == 1 and summary["models"] == ["bicubic"] and summary["datasets"] == ["Set5"]
    text = (tmp_path / "board" / "LEADERBOARD.md").read_text().lower()
    assert not re.search(r"\|\s*[-+]?(nan|inf)\b", text)  # no table cell shows nan or inf
    assert "bicubic_x4.json: empty has a non-finite" in caplog.text and "edsr_x4.json: Set5" in caplog.text
    with pytest.raises(EvaluationError, match="no evaluation JSONs"):
        (evals / "bicubic_x4.json").unlink()
        load_evaluations(evals)

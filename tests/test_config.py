"""params.yaml and params-paper.yaml: both load, every job is buildable, and dvc.yaml's param keys exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from srpipe.config import Params, from_dict, load_params
from srpipe.models import get_card
from srpipe.train.spec import resolve

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ["params.yaml", "params-paper.yaml"]


@pytest.mark.parametrize("profile", PROFILES)
def test_profile_jobs_are_supported_and_have_their_params_key(profile: str) -> None:
    p = load_params(ROOT / profile)
    jobs = p.pipeline.jobs() + [(m, s) for m, s, _ in p.pipeline.finetuned()]
    assert jobs
    for model, scale in jobs:
        assert scale in get_card(model).scales, f"{profile}: {model} cannot do x{scale}"
        assert model in p.train.models, f"{profile}: dvc.yaml depends on train.models.{model}, which is missing"
        spec = resolve(model, scale, p.train)
        assert spec.iterations > 0 and spec.hr_patch % scale == 0
    for f in p.pipeline.finetune:
        assert f.init in p.pipeline.models, f"{profile}: {f.model} starts from {f.init}, which is not trained"


def test_the_default_profile_is_offline_tiny_and_covers_the_15_networks() -> None:
    p = load_params(ROOT / "params.yaml")
    assert p.data.datasets["sample"] == "required"
    assert all(v == "optional" for k, v in p.data.datasets.items() if k != "sample")
    assert p.train.config == "tiny" and p.pipeline.scales == (4,)
    families = {get_card(m).title for m in [*p.pipeline.models, *(f.model for f in p.pipeline.finetune)]}
    assert len(families) == 15  # SRResNet and SRGAN share one paper


def test_the_paper_profile_uses_each_papers_recipe() -> None:
    p = load_params(ROOT / "params-paper.yaml")
    assert p.train.config == "paper" and p.train.recipe == {} and p.train.iterations is None
    spec = resolve("edsr", 2, p.train)
    assert spec.recipe == get_card("edsr").recipe and spec.iterations == get_card("edsr").recipe.iterations
    assert resolve("vdsr", 2, p.train).color == "y"


def test_unknown_keys_and_bad_types_name_their_path() -> None:
    with pytest.raises(ValueError, match=r"params\.train: unknown key\(s\) \['iteration'\]"):
        from_dict(Params, {"train": {"iteration": 5}})
    with pytest.raises(ValueError, match=r"params\.train\.val_every: expected int"):
        from_dict(Params, {"train": {"val_every": "often"}})
    with pytest.raises(ValueError, match=r"pipeline\.extra\.lapsrn_x3: must be named lapsrn_x8"):
        from_dict(Params, {"pipeline": {"scales": [8], "extra": {"lapsrn_x3": {"model": "lapsrn", "scale": 8}}}})
    assert load_params(None) == Params()


def test_a_named_params_file_that_is_missing_or_not_yaml_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no-such-file\.yaml: no such parameters file"):
        load_params(tmp_path / "no-such-file.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n  x: {")
    with pytest.raises(ValueError, match=r"bad\.yaml: not valid YAML \(.*line \d+"):
        load_params(bad)


@pytest.mark.parametrize(
    ("section", "values", "message"),
    [
        ("train", {"iterations": 0}, r"params\.train: iterations must be ≥ 1, got 0"),
        ("train", {"iterations": -5}, r"iterations must be ≥ 1, got -5"),
        ("train", {"val_every": 0}, r"val_every must be ≥ 1, got 0"),
        ("train", {"ckpt_every": 0}, r"ckpt_every must be ≥ 1"),
        ("train", {"log_every": -1}, r"log_every must be ≥ 1"),
        ("train", {"ema_decay": 1.0}, r"ema_decay must be in \[0, 1\)"),
        ("train", {"color": "bgr"}, r"color must be one of rgb, y, paper"),
        ("train", {"models": {"edsr": {"iterations": 0}}}, r"params\.train\.models\.edsr: iterations must be ≥ 1"),
        (
            "train",
            {"models": {"edsr": {"lr": 0.001}}},
            r"models\.edsr\.lr: write it as params\.train\.models\.edsr\.recipe\.lr",
        ),
        ("pipeline", {"scales": [0]}, r"params\.pipeline: scales must be distinct upscaling factors ≥ 2, got \[0\]"),
        ("pipeline", {"scales": [1]}, r"scales must be distinct upscaling factors ≥ 2"),
        ("pipeline", {"scales": []}, r"scales must be"),
        ("prepare", {"stride": 0}, r"params\.prepare: stride must be ≥ 1, got 0"),
        ("data", {"datasets": {"Set5": "maybe"}}, r"datasets\.Set5 must be required or optional"),
        ("data", {"timeout": 0}, r"timeout must be > 0"),
        ("evaluate", {"tile": -1}, r"tile must be ≥ 0"),
        ("evaluate", {"max_memory": "lots"}, r"params\.evaluate: max_memory: not a memory size: 'lots'"),
        ("evaluate", {"max_memory": 3000000000}, r"params\.evaluate\.max_memory: expected str"),
        ("orchestration", {"max_concurrent_trainings": 0}, r"max_concurrent_trainings must be ≥ 1"),
    ],
)
def test_budgets_and_cadences_are_checked_when_params_are_read(section: str, values: dict, message: str) -> None:
    # Before: iterations 0 meant "the paper's total", -5 wrote an untrained model, val_every 0 and scales [0] were
    # ZeroDivisionErrors deep inside the stages.
    with pytest.raises(ValueError, match=message):
        from_dict(Params, {section: values})


def test_pipeline_models_and_scales_are_checked_before_any_work() -> None:
    with pytest.raises(KeyError, match="nosuchnet"):
        from_dict(Params, {"pipeline": {"models": ["nosuchnet"]}}).pipeline.check_models()
    with pytest.raises(ValueError, match=r"lapsrn has no x3"):
        from_dict(Params, {"pipeline": {"models": ["lapsrn"], "scales": [3]}}).pipeline.check_models()
    with pytest.raises(KeyError, match="nosuchinit"):
        finetune = [{"model": "srgan", "init": "nosuchinit"}]
        from_dict(Params, {"pipeline": {"models": ["srresnet"], "finetune": finetune}}).pipeline.check_models()
    for profile in PROFILES:
        load_params(ROOT / profile).pipeline.check_models()

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
    assert load_params(ROOT / "no-such-file.yaml") == Params()
